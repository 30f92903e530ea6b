"""CleanRL's ``dqn_atari_jax.py``, the script its PyPI wheel installs, timed by its own progress lines.

Run by the cleanrl side venv's Python: ``python run_cleanrl.py '<json spec>'``. The script is located in this
venv's site-packages (``cleanrl/dqn_atari_jax.py``), adapted at run time by ``gym_shim.apply()`` (today's
gymnasium and ale-py) and run as ``__main__`` with the spec's arguments. Once it learns it prints "SPS:" every
100 env steps that are update steps; the arrival times of those lines give the steady rate, leaving out the
first ``skip`` lines after learning starts (they hold the update's compilation). When the window is complete
one JSON line is printed and the process ends (CleanRL's own total of 10M steps is never reached).
"""
from __future__ import annotations

import json
import math
import os
import runpy
import sys
import sysconfig
import tempfile
import time
from pathlib import Path


def script_path() -> Path:
    for key in ("purelib", "platlib"):
        path = Path(sysconfig.get_paths()[key]) / "cleanrl" / "dqn_atari_jax.py"
        if path.exists():
            return path
    raise SystemExit("run_cleanrl.py: cleanrl/dqn_atari_jax.py is not in this venv's site-packages")


class LineClock:
    """A stdout that timestamps CleanRL's "SPS:" lines and ends the process once the window is timed."""

    def __init__(self, out, per_line: int, skip: int, need: int, result: dict):
        self.out, self.per_line, self.skip, self.need, self.result = out, per_line, skip, need, result
        self.arrivals: list[float] = []
        self.start = time.perf_counter()

    def write(self, text: str) -> int:
        if text.startswith("SPS:"):
            self.arrivals.append(time.perf_counter())
            if len(self.arrivals) == self.skip + 1:
                self.result["compile_and_warmup_s"] = round(self.arrivals[-1] - self.start, 2)
            if len(self.arrivals) >= self.need:
                times = self.arrivals[self.skip:]
                rate = self.per_line * (len(times) - 1) / (times[-1] - times[0])
                self.result |= {"env_steps_per_s": round(rate, 1), "seconds": round(times[-1] - times[0], 2),
                                "env_steps": self.per_line * (len(times) - 1)}
                self.out.write(json.dumps(self.result) + "\n")
                self.out.flush()
                os._exit(0)
        return len(text)

    def flush(self) -> None:
        pass


def main() -> None:
    spec = json.loads(sys.argv[1])
    sys.path.insert(0, str(Path(__file__).parent))
    import gym_shim

    gym_shim.apply()
    script = script_path()
    per_line = math.lcm(100, spec["train_frequency"])
    need = spec["skip"] + 1 + -(-spec["steady_steps"] // per_line)
    args = ["--env-id", spec["env_id"], "--seed", str(spec.get("seed", 1)), "--learning-starts",
            str(spec["learning_starts"]), "--buffer-size", str(spec["buffer_size"]), "--train-frequency",
            str(spec["train_frequency"]), "--target-network-frequency", str(spec["target_network_frequency"]),
            "--batch-size", str(spec["batch_size"]), "--learning-rate", str(spec["lr"])]
    os.environ["XLA_PYTHON_CLIENT_MEM_FRACTION"] = "0.7"  # what the script sets, before jax starts here
    import jax

    dev = jax.devices()[0]
    result = {"compile_s": None, "script": str(script), "args": args,
              "device": {"platform": dev.platform, "kind": dev.device_kind, "count": jax.device_count()},
              "timed": f"arrival times of its 'SPS:' lines (one per {per_line} env steps once it learns), leaving "
                       f"out the first {spec['skip']} after learning starts (the update's compilation)"}
    os.chdir(tempfile.mkdtemp(prefix="cleanrl_"))  # its TensorBoard runs/ folder goes there
    sys.argv = [str(script), *args]
    sys.stdout = LineClock(sys.__stdout__, per_line, spec["skip"], need, result)
    runpy.run_path(str(script), run_name="__main__")
    sys.__stdout__.write(json.dumps({"error": f"dqn_atari_jax.py ended after {len(sys.stdout.arrivals)} of {need} "
                                              "progress lines"}) + "\n")
    sys.exit(1)


if __name__ == "__main__":
    main()
