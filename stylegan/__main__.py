"""`python -m stylegan ...` (what `torchrun -m stylegan train ...` runs)."""
from .cli import main

if __name__ == "__main__":
    main()
