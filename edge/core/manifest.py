"""The model manifest: labels, tensors, preprocessing, sha256, metrics and provenance for each model.

`load_model_entry` is the single gate every model passes before use: the file's sha256 and the
interpreter's real input/output tensors must match the manifest, or a one-line ModelError says why.
See models/README.md for the format.
"""

from __future__ import annotations

import hashlib
import json
import os
import tempfile
from dataclasses import dataclass
from pathlib import Path
from typing import Any

import numpy as np

from .errors import ModelError
from .preprocess import PreprocessSpec
from .runtime import quant_params

SCHEMA_VERSION = 1
MANIFEST_NAME = "manifest.json"
VARIANTS = ("int8", "float32")


def sha256_file(path: str | Path) -> str:
    h = hashlib.sha256()
    with open(path, "rb") as f:
        for chunk in iter(lambda: f.read(1 << 20), b""):
            h.update(chunk)
    return h.hexdigest()


def labels_digest(labels: list[str] | tuple[str, ...], file_sha256: str) -> str:
    """Order-sensitive digest binding a model file to its label list: a manifest whose labels were reordered or
    renamed (every emotion silently mislabelled) no longer matches what export recorded."""
    return hashlib.sha256(json.dumps({"labels": list(labels), "sha256": file_sha256}).encode()).hexdigest()[:16]


def model_version(entry: dict[str, Any]) -> str:
    """A model's version: the first 12 hex digits of a sha256 over what decides its output — its files' sha256s
    (variant order-free), its test-time augmentation, its decision calibration and its exposure normalisation.

    Derived, never typed in: it changes exactly when a model file is re-exported or retrained or `evaluate`
    changes how its output is read, and two boards that publish the same version give the same answers.
    """
    digests = sorted(str(v.get("sha256", "")) for v in (entry.get("variants") or {}).values())
    decision = {"tta": entry.get("tta") or "none", "calibration": entry.get("calibration") or {}}
    exposure = (entry.get("preprocess") or {}).get("exposure")
    if exposure is not None:  # only when on: the versions of models without it stay what they were
        decision["exposure"] = exposure
    return hashlib.sha256(json.dumps([digests, decision], sort_keys=True).encode()).hexdigest()[:12]


def tensor_record(detail: dict) -> dict[str, Any]:
    """What the manifest stores about one interpreter tensor."""
    scale, zp = quant_params(detail)
    return {
        "shape": [int(s) for s in detail["shape"]],
        "dtype": np.dtype(detail["dtype"]).name,
        "scale": scale,
        "zero_point": zp,
    }


@dataclass(frozen=True)
class ModelEntry:
    """One model of the manifest, with paths resolved against the manifest's folder."""

    name: str
    root: Path
    data: dict[str, Any]

    @property
    def labels(self) -> tuple[str, ...]:
        return tuple(self.data["labels"])

    @property
    def version(self) -> str:
        """Derived from the files' sha256s and the decision settings (see `model_version`), never typed in."""
        return model_version(self.data)

    @property
    def preprocess(self) -> PreprocessSpec:
        return PreprocessSpec.from_dict(self.data["preprocess"])

    def variant(self, variant: str) -> dict[str, Any]:
        variants = self.data.get("variants", {})
        if variant not in variants:
            ref = self.data.get("float_reference") if variant == "float32" else None
            why = (
                f"; its float file ({ref.get('size_bytes', 0) / 1e6:.1f} MB) is too large to ship and stays in "
                f"its run folder as the float reference"
                if isinstance(ref, dict)
                else ""
            )
            raise ModelError(
                f"model {self.name!r} has no {variant!r} variant (has {sorted(variants)}){why}; "
                f"fix: choose one of {sorted(variants)}{'' if why else ' or re-export it'}"
            )
        return variants[variant]

    def float_reference(self) -> ModelEntry | None:
        """The float file `emotion-trainer export` kept out of the models folder (over its size limit even with
        float16 weights), as an entry whose one variant is float32, found where the record says (a folder relative
        to the working directory, as `--runs` is); None when the model ships its float file."""
        ref = self.data.get("float_reference")
        if not ref:
            return None
        variant = {k: v for k, v in ref.items() if k != "folder"}
        return ModelEntry(self.name, Path(ref["folder"]), {**self.data, "variants": {"float32": variant}})

    def path(self, variant: str = "int8") -> Path:
        return self.root / self.variant(variant)["file"]

    def verify_file(self, variant: str = "int8") -> Path:
        """Check the file exists and has the recorded sha256."""
        path = self.path(variant)
        if not path.is_file():
            raise ModelError(
                f"model file {path} is missing; fix: reinstall the models or run 'emotion-trainer export {self.name}'"
            )
        want = self.variant(variant).get("sha256")
        try:
            got = sha256_file(path)
        except OSError as exc:
            raise ModelError(
                f"model file {path} cannot be read ({exc.strerror}); fix: make it readable (chmod 0644)"
            ) from None
        if want != got:
            raise ModelError(
                f"model file {path} does not match its manifest (sha256 {got[:12]}… != {str(want)[:12]}…); "
                "it is corrupt or was replaced: reinstall it or re-export it"
            )
        digest = self.variant(variant).get("labels_digest")
        if digest != labels_digest(self.labels, got):
            raise ModelError(
                f"the labels {list(self.labels)} of model {self.name!r} are not the ones it was exported with "
                f"(labels_digest {'missing' if digest is None else 'differs'}); fix: restore the manifest's "
                "labels in their original order, or re-export the model"
            )
        return path

    def check_interpreter(self, interp: Any, variant: str = "int8") -> None:
        """Refuse an interpreter whose tensors differ from the manifest."""
        rec = self.variant(variant)
        ins, outs = interp.get_input_details(), interp.get_output_details()
        if len(ins) != 1 or len(outs) != 1:
            raise ModelError(
                f"model {self.name!r} has {len(ins)} inputs/{len(outs)} outputs; an emotion model has 1 and 1"
            )
        got_in, got_out = tensor_record(ins[0]), tensor_record(outs[0])
        spec = self.preprocess
        expect_shape = [1, *spec.input_shape]
        for what, got, want in (("input", got_in, rec["input"]), ("output", got_out, rec["output"])):
            for key in ("shape", "dtype"):
                if got[key] != want[key]:
                    raise ModelError(
                        f"model {self.name!r} {what} {key} is {got[key]} but the manifest says {want[key]}; "
                        "fix: re-export the model or restore its manifest entry"
                    )
            if not np.isclose(got["scale"], want["scale"], rtol=1e-6) or got["zero_point"] != want["zero_point"]:
                raise ModelError(
                    f"model {self.name!r} {what} quantisation {got['scale']},{got['zero_point']} differs from the "
                    "manifest; "
                    "fix: re-export the model"
                )
        if got_in["shape"] != expect_shape:
            raise ModelError(
                f"model {self.name!r} input shape {got_in['shape']} does not match its preprocessing {expect_shape}"
            )
        if got_out["shape"][-1] != len(self.labels):
            raise ModelError(
                f"model {self.name!r} outputs {got_out['shape'][-1]} classes but the manifest lists "
                f"{len(self.labels)} labels {list(self.labels)}; fix: correct the labels or re-export"
            )


class Manifest:
    """models/manifest.json: read, look up, and atomically update."""

    def __init__(self, root: str | Path):
        self.root = Path(root)
        self.path = self.root / MANIFEST_NAME
        self.data = self._read()

    def _read(self) -> dict[str, Any]:
        if not self.path.is_file():
            return {"schema_version": SCHEMA_VERSION, "default_model": None, "models": {}}
        try:
            data = json.loads(self.path.read_text(encoding="utf-8"))
        except OSError as exc:
            raise ModelError(
                f"manifest {self.path} cannot be read ({exc.strerror}); fix: make it readable (chmod 0644)"
            ) from None
        except (UnicodeDecodeError, json.JSONDecodeError) as exc:
            raise ModelError(
                f"manifest {self.path} is not valid JSON ({exc}); fix: restore it from the release"
            ) from None
        if not isinstance(data, dict) or not isinstance(data.get("models"), dict):
            raise ModelError(
                f"manifest {self.path} is not an object with a 'models' table; fix: restore it from the release"
            )
        if data.get("schema_version") != SCHEMA_VERSION:
            raise ModelError(
                f"manifest {self.path} has schema_version {data.get('schema_version')!r}, "
                f"this emotion-edge reads {SCHEMA_VERSION}; fix: upgrade emotion-edge or the models"
            )
        return data

    @property
    def names(self) -> list[str]:
        return list(self.data["models"])

    @property
    def default_model(self) -> str | None:
        return self.data.get("default_model")

    def entry(self, name: str | None = None) -> ModelEntry:
        name = name or self.default_model
        if not name or name not in self.data["models"]:
            known = ", ".join(self.names) or "none"
            if not name:
                raise ModelError(
                    f"no model named and {self.path} has no default_model (known: {known}); "
                    "fix: set [classifier] model, or install/train the models"
                )
            raise ModelError(
                f"model {name!r} is not in {self.path} (known: {known}); fix: pick one of those or train it"
            )
        return ModelEntry(name, self.root, self.data["models"][name])

    def update(self, name: str, fields: dict[str, Any], default: bool | None = None) -> None:
        """Merge `fields` into a model's entry (top-level keys replaced) and write atomically."""
        self.data = self._read()
        entry = self.data["models"].setdefault(name, {})
        entry.update(fields)
        entry["version"] = model_version(entry)  # kept in step with whatever this update changed
        self.data["models"] = dict(sorted(self.data["models"].items()))
        if default or not self.data.get("default_model"):
            self.data["default_model"] = name
        self.root.mkdir(parents=True, exist_ok=True)
        fd, tmp = tempfile.mkstemp(dir=self.root, prefix=".manifest.")
        with os.fdopen(fd, "w") as f:
            json.dump(self.data, f, indent=2, sort_keys=False)
            f.write("\n")
        os.chmod(tmp, 0o644)
        os.replace(tmp, self.path)
