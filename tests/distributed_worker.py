"""A torchrun worker for tests/test_distributed.py: trains one run per config with `Trainer` (each into OUT/I/run,
in one process group) and saves this process's whole variant state to OUT/I/rank-R.safetensors, so the test can
compare processes with each other and with one process.

    python -m torch.distributed.run --standalone --nproc-per-node=2 tests/distributed_worker.py OUT \\
        PRESET key=value... [:: PRESET key=value...]
"""

import sys
from pathlib import Path

from safetensors.torch import save_file

import gankit
from gankit.train import Trainer


def main() -> None:
    out, configs = Path(sys.argv[1]), " ".join(sys.argv[2:]).split(" :: ")
    for i, config in enumerate(configs):
        preset, *overrides = config.split()
        trainer = Trainer(gankit.load_config(preset, overrides), out / str(i) / "run", progress=False)
        trainer.fit()
        state = {k: v.contiguous() for k, v in trainer.variant.state_dict().items()}
        save_file(state, out / str(i) / f"rank-{trainer.shard.rank}.safetensors")


if __name__ == "__main__":
    main()
