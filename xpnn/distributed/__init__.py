"""Data-parallel training over MPI (mpi4py); a NCCL communicator for GPUs can be added later.

    comm = xpnn.distributed.init()     # mpiexec -n N python train.py; size 1 without MPI
    model.fit(x, y, ..., batch_size=512, communicator=comm)   # 512 = the GLOBAL batch

N ranks reproduce the one-process run (same seed and batch size, no dropout) to float
rounding and end with bit-identical parameters. Hand-written loops wrap their optimizer in
:class:`DistributedOptimizer` and start from :func:`broadcast_parameters`. mpi4py is
imported only by :func:`init`, so ``import xpnn`` never needs it.
"""

from xpnn.distributed.communicator import Communicator, SingleProcess, init, launched_by_mpi
from xpnn.distributed.consistency import broadcast_optimizer_state, broadcast_parameters, check_same_model
from xpnn.distributed.parallel import DataParallel, DistributedOptimizer, average_gradients
from xpnn.distributed.sharding import Shards, shard_bounds

__all__ = [
    "Communicator",
    "DataParallel",
    "DistributedOptimizer",
    "Shards",
    "SingleProcess",
    "average_gradients",
    "broadcast_optimizer_state",
    "broadcast_parameters",
    "check_same_model",
    "init",
    "launched_by_mpi",
    "shard_bounds",
]
