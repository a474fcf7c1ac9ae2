"""Data-parallel training over MPI (mpi4py). Being built: see the project's open issue."""
