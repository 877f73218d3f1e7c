"""Worker for test_distributed and test_crash_safety: trains test_engine's regression stage.

Usage: [torchrun --nproc_per_node=2] train_regression.py OUT_DIR EPOCHS [--resume] [--json]
Each rank writes rank<R>.safetensors with its final weights; --json prints progress JSON lines.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_engine import Pairs, RegressionStage, _cfg  # noqa: E402

from neonet_core.engine import Trainer  # noqa: E402
from neonet_core.progress import set_default_mode  # noqa: E402


def main():
    out, epochs, resume = Path(sys.argv[1]), int(sys.argv[2]), "--resume" in sys.argv
    set_default_mode("json" if "--json" in sys.argv else "none")
    stage = RegressionStage()
    trainer = Trainer(stage, Pairs(), None, _cfg(epochs=epochs), out, device="cpu")
    trainer.fit(resume=resume)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in stage.net.state_dict().items()}, str(out / f"rank{trainer.rank}.safetensors"))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
