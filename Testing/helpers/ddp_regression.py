"""Worker for test_distributed: trains the regression stage of test_engine under torchrun.

Usage: torchrun --nproc_per_node=2 ddp_regression.py OUT_DIR EPOCHS [--resume]
Each rank writes rank<R>.safetensors with its final weights.
"""

import sys
from pathlib import Path

import torch

sys.path.insert(0, str(Path(__file__).resolve().parents[1]))
from test_engine import Pairs, RegressionStage, _cfg  # noqa: E402

from neonet_core.engine import Trainer  # noqa: E402


def main():
    out, epochs, resume = Path(sys.argv[1]), int(sys.argv[2]), "--resume" in sys.argv
    stage = RegressionStage()
    trainer = Trainer(stage, Pairs(), None, _cfg(epochs=epochs, device="cpu"), out)
    trainer.fit(resume=resume)
    from safetensors.torch import save_file

    save_file({k: v.contiguous() for k, v in stage.net.state_dict().items()}, str(out / f"rank{trainer.rank}.safetensors"))
    if torch.distributed.is_initialized():
        torch.distributed.destroy_process_group()


if __name__ == "__main__":
    main()
