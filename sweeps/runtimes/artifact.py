"""An artifact as the files a runtime deploys, and as one blob while it travels.

Most runtimes deploy one file (`model.onnx`, `model.pt2`): the blob is its bytes. A runtime
whose artifact is several files (OpenVINO's `model.xml` beside its `model.bin`) registers
the suffixes of the files that go with its main one; the blob is then an uncompressed tar
of them, built the same way every time (same files, same blob, same sha256), and the
artifact's size is the bytes of its files, not of the tar.
"""

import io
import tarfile
from pathlib import Path

# the main file's suffix → the suffixes of the files deployed beside it
COMPANIONS: dict[str, tuple[str, ...]] = {}


def register_companions(suffix: str, companions: tuple[str, ...]) -> None:
    COMPANIONS[suffix] = companions


def artifact_files(path: Path) -> list[Path]:
    """The files of the artifact whose main file is `path`, main file first (this package's
    import registered every runtime's companions)."""
    return [path, *(path.with_suffix(s) for s in COMPANIONS.get(path.suffix, ()))]


def artifact_size(path: Path) -> int:
    """Bytes of the deployed files: the reported size."""
    return sum(file.stat().st_size for file in artifact_files(path))


def read_artifact(path: Path) -> bytes:
    """The blob that carries the artifact at `path` (its one file's bytes, or a tar)."""
    files = artifact_files(path)
    if len(files) == 1:
        return path.read_bytes()
    buffer = io.BytesIO()
    with tarfile.open(fileobj=buffer, mode="w", format=tarfile.PAX_FORMAT) as bundle:
        for file in files:
            info = tarfile.TarInfo(file.name)  # no times, owners or modes: reproducible
            info.size = file.stat().st_size
            with file.open("rb") as content:
                bundle.addfile(info, content)
    return buffer.getvalue()


def write_artifact(blob: bytes, path: Path) -> list[Path]:
    """Lay the artifact out again as its files, the main one at `path`; returns them."""
    files = artifact_files(path)
    if len(files) == 1:
        path.write_bytes(blob)
        return files
    wanted = {file.suffix: file for file in files}
    with tarfile.open(fileobj=io.BytesIO(blob), mode="r:") as bundle:
        members = bundle.getmembers()
        found = {Path(m.name).suffix: m for m in members if m.isfile()}
        if sorted(found) != sorted(wanted) or len(members) != len(files):
            raise ValueError(
                f"the blob of {path.name} holds {[m.name for m in members]}; "
                f"expected the files {[f.name for f in files]}"
            )
        for suffix, file in wanted.items():
            extracted = bundle.extractfile(found[suffix])
            assert extracted is not None  # a regular file, checked above
            file.write_bytes(extracted.read())
    return files
