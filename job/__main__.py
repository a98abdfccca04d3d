"""`python -m job` runs the same CLI as the `job` console script."""

from job.cli import main

if __name__ == "__main__":
    main()
