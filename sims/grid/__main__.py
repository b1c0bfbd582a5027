"""``python -m sims.grid HOST:PORT``: the grid simulator as a separate process."""

from sims.grid.adapter import main

if __name__ == "__main__":
    main()
