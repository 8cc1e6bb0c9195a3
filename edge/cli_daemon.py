"""The daemon's commands: run, check-config, example-config, demo."""

from __future__ import annotations

import json
import logging
import socket
import threading
import time
from dataclasses import replace

from edge.config import example_toml, load_config, mqtt_password
from edge.publish.outbox import default_outbox_path

log = logging.getLogger(__name__)


def _broker_answers(host: str, port: int) -> bool:
    """True when a broker there accepts an anonymous client (one that wants a login is no use to the demo)."""
    import paho.mqtt.client as mqtt

    try:
        with socket.create_connection((host, port), timeout=1.0):
            pass
    except OSError:
        return False
    result: list = []
    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2)
    client.on_connect = lambda c, u, f, rc, p: result.append(not rc.is_failure)
    try:
        client.connect(host, port, keepalive=5)
        client.loop_start()
        deadline = time.monotonic() + 3.0
        while not result and time.monotonic() < deadline:
            time.sleep(0.05)
    except OSError:
        return False
    finally:
        client.loop_stop()
        client.disconnect()
    return bool(result and result[0])


def _print_events_from_broker(host: str, port: int, topic: str, stop: threading.Event) -> threading.Thread:
    """Subscribe like a user would (mosquitto_sub -t TOPIC -v) and print what arrives."""
    import paho.mqtt.client as mqtt

    def on_message(client, userdata, msg):
        print(f"{msg.topic} {msg.payload.decode()}", flush=True)

    client = mqtt.Client(mqtt.CallbackAPIVersion.VERSION2, client_id="emotion-edge-demo-viewer")
    client.on_message = on_message
    client.on_connect = lambda c, u, f, rc, p: c.subscribe(topic, qos=1)
    client.connect(host, port)

    def loop():
        client.loop_start()
        stop.wait()
        client.loop_stop()
        client.disconnect()

    t = threading.Thread(target=loop, daemon=True)
    t.start()
    return t


def main(args) -> int:
    from edge import app

    if args.cmd == "example-config":
        print(example_toml(), end="")
        return 0
    if args.cmd == "check-config":
        cfg = load_config(args.config)
        classifier, detector, source = app.build_parts(cfg)  # model sha256 + tensors, detector, camera type
        if cfg.publisher == "mqtt":
            mqtt_password(cfg.mqtt)  # readable, text, one line (as the service user, when run with sudo -u)
        print(
            f"config ok: device {cfg.device_id}, camera {cfg.camera.name} ({cfg.camera.type}), model {classifier.name} "
            f"{classifier.variant} {list(classifier.labels)}, detector {detector.name}, publisher {cfg.publisher}"
        )
        return 0
    if args.cmd == "run":
        cfg = load_config(args.config)
        if args.publisher:
            cfg = replace(cfg, publisher=args.publisher)
        return app.run(cfg, args.duration)
    # demo: the built-in clip, to a local broker when one answers, else to stdout
    cfg = load_config(None)
    use_mqtt = _broker_answers(args.host, args.port)
    cfg = replace(
        cfg,
        device_id="demo",
        publisher="mqtt" if use_mqtt else "stdout",
        stats_interval_s=5.0,
        summary_interval_s=10.0,
        mqtt=replace(
            cfg.mqtt,
            host=args.host,
            port=args.port,
            outbox_path=str(default_outbox_path().with_name("demo-outbox.sqlite")),
        ),
    )
    stop = threading.Event()
    if use_mqtt:
        topic = f"{cfg.mqtt.topic_prefix}/{cfg.device_id}/#"
        print(
            f"demo: publishing to the MQTT broker at {args.host}:{args.port}; printing what arrives on '{topic}' "
            f"(elsewhere: mosquitto_sub -h {args.host} -p {args.port} -t '{topic}' -v, or emotion-edge listen --host "
            f"{args.host} --port {args.port})",
            flush=True,
        )
        viewer_stop = threading.Event()
        _print_events_from_broker(args.host, args.port, topic, viewer_stop)
        try:
            return app.run(cfg, args.duration, stop)
        finally:
            viewer_stop.set()
    print(
        json.dumps(
            {
                "demo": f"no MQTT broker at {args.host}:{args.port}; printing to stdout "
                "(install mosquitto to see events arrive over MQTT)"
            }
        ),
        flush=True,
    )
    return app.run(cfg, args.duration, stop)
