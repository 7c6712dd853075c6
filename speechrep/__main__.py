"""`python -m speechrep` (also what `torchrun -m speechrep` runs)."""

from speechrep.cli import main

if __name__ == "__main__":
    main()
