"""``python -m geodiv`` (also what ``torchrun -m geodiv pretrain ...`` runs)."""

from geodiv.cli import main

if __name__ == "__main__":
    raise SystemExit(main())
