"""What a killed stage leaves behind: a writer process SIGKILLed inside `atomic_dir`."""

from __future__ import annotations

import signal
import subprocess
import sys
from pathlib import Path

REPO = Path(__file__).resolve().parents[2]
_WRITER = """
import sys, time
from pathlib import Path
from syncvp.io.atomic import atomic_dir
with atomic_dir(Path(sys.argv[1])) as tmp:
    (tmp / "train.nc").write_bytes(b"half a store")
    print(tmp, flush=True)
    time.sleep(120)
"""


def kill_mid_write(final: Path) -> Path:
    """Start writing the folder `final` in another process, SIGKILL it halfway, and return the
    temporary folder it leaves behind."""
    proc = subprocess.Popen([sys.executable, "-c", _WRITER, str(final)], cwd=REPO, stdout=subprocess.PIPE, text=True)
    try:
        tmp = Path(proc.stdout.readline().strip())
    finally:
        proc.send_signal(signal.SIGKILL)
        proc.wait()
        proc.stdout.close()
    assert tmp.name.startswith(f".{final.name}.tmp-") and (tmp / "train.nc").is_file(), tmp
    return tmp
