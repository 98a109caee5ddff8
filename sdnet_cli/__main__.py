"""``python -m sdnet_cli`` (also what ``torchrun -m sdnet_cli`` runs)."""

from .cli.app import main

if __name__ == "__main__":
    main()
