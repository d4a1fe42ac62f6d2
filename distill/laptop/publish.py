"""Publish an export folder to a Hugging Face hub model repo through huggingface_hub.

Every GGUF is checked against its manifest sha256 before anything is uploaded. The repo gets the
GGUF files, `manifest.json`, the model card `README.md`, and Ollama's files: `template` (Go
template), `params` (JSON) and `system` where there is one, which is what
`ollama run hf.co/ORG/REPO:Q4_K_M` reads (it never reads a Modelfile; without them it converts the
GGUF's Jinja template and loses thinking and the sampling defaults). The `Modelfile` goes too, for
`ollama create` after a download. `distill pull ORG/REPO` and `llama-cli -hf ORG/REPO:Q4_K_M` work.

    plan = upload_plan(Path("export/smol"))      # what would be sent, verified
    url = publish(Path("export/smol"), "me/smol-r1", private=True)
"""

from __future__ import annotations

from pathlib import Path

from distill.errors import DistillError
from distill.laptop.manifest import check_files, parse_manifest, safe_name
from distill.records import sha256_file

SIDE_FILES = ("manifest.json", "README.md", "Modelfile", "template", "params", "system")


def _ensure_ollama_files(export_dir: Path, manifest: dict, files: list[dict]) -> None:
    """Exports made before `template`/`params` existed get them, from the manifest, as export writes them."""
    from distill.export.ollama import style_of, write_files

    if (export_dir / "params").exists():
        return
    default = next((f for f in files if f.get("quant") == "Q4_K_M"), files[-1])
    stop = manifest.get("stop_token")
    if not style_of(stop):
        raise DistillError(f"{export_dir}/manifest.json has no known stop_token ({stop!r}); re-run `distill export`")
    write_files(export_dir, safe_name(default["file"], export_dir), stop, manifest.get("prefill_think") is not False)


def upload_plan(export_dir: Path) -> list[dict]:
    """The files to upload, each verified against the manifest (GGUFs) or present (side files)."""
    export_dir = Path(export_dir)
    mpath = export_dir / "manifest.json"
    if not mpath.exists():
        raise DistillError(f"{export_dir} has no manifest.json; run `distill export` first")
    manifest = parse_manifest(mpath.read_bytes(), str(mpath))
    files = check_files(manifest, export_dir)
    plan = []
    for entry in files:
        path = safe_name(entry["file"], export_dir)
        if not path.exists():
            raise DistillError(f"{path} is listed in the manifest but missing; re-run `distill export`")
        if sha256_file(path) != entry["sha256"]:
            raise DistillError(f"{path} does not match its manifest sha256; re-run `distill export` before publishing")
        plan.append({"file": path.name, "bytes": path.stat().st_size, "quant": entry.get("quant")})
    _ensure_ollama_files(export_dir, manifest, files)
    for name in SIDE_FILES:
        if (export_dir / name).exists():
            plan.append({"file": name, "bytes": (export_dir / name).stat().st_size, "quant": None})
    return plan


def publish(export_dir: Path, repo_id: str, token: str | None = None, private: bool = True,
            dry_run: bool = False) -> str | list[dict]:
    """Create (or reuse) `repo_id` and upload the plan in one commit; `dry_run` returns the plan."""
    from huggingface_hub import HfApi, get_token
    from huggingface_hub.errors import HfHubHTTPError

    plan = upload_plan(export_dir)
    if dry_run:
        return plan
    token = token or get_token()
    if not token:
        raise DistillError("no Hugging Face token: run `hf auth login` or set HF_TOKEN, then publish again "
                           "(`--dry-run` shows what would be uploaded)")
    api = HfApi(token=token)
    try:
        api.create_repo(repo_id, repo_type="model", private=private, exist_ok=True)
        api.upload_folder(repo_id=repo_id, folder_path=str(export_dir), repo_type="model",
                          allow_patterns=[p["file"] for p in plan],
                          commit_message=f"distill export ({len(plan)} files)")
    except (HfHubHTTPError, OSError) as e:
        raise DistillError(f"upload to {repo_id} failed: {str(e).splitlines()[0]}; check the token's write access "
                           "and your network") from None
    return f"https://huggingface.co/{repo_id}"
