"""The Hydra multirun peer of `npm run bench -- sweeps`: a trivial task per trial."""
import hydra
from omegaconf import DictConfig


@hydra.main(version_base=None, config_path=None, config_name=None)
def main(cfg: DictConfig) -> float:
    return float(cfg.get("x", 0)) * 2.0


if __name__ == "__main__":
    main()
