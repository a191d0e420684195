"""Scale past one device with JAX's own sharding: data-parallel training, sharded grids, multi-host.

Nothing here is home-made parallelism: a :class:`jax.sharding.Mesh` names the devices,
:class:`~jax.sharding.NamedSharding` says how each array is laid out, and ``jax.jit``
(XLA's SPMD partitioner) inserts the collectives. :func:`funcnn.train.fit` and
:func:`funcnn.train.run_grid` take ``mesh=`` and do the placement themselves::

    from funcnn.train.parallel import make_mesh
    from funcnn.train import fit, run_grid

    mesh = make_mesh(mesh={"data": 8})                   # data-parallel over 8 devices
    fit(model, "softmax_cross_entropy", opt, (x, y), epochs=5, mesh=mesh)

    mesh = make_mesh(mesh={"grid": 4, "data": 2})        # a 2-D mesh
    run_grid(build, grid, (x, y), epochs=5, mesh=mesh)

Two mesh axes are understood (a mesh may have either or both):

- ``"data"`` (:data:`DATA`): every training batch is split over this axis; parameters and
  optimizer state are replicated. The loss is the mean over the *global* batch, so XLA
  averages the gradients with an all-reduce, and batch-norm statistics are global-batch
  statistics automatically (the program is the single-device program, partitioned).
- ``"grid"`` (:data:`GRID`): the leading member axis of a vmapped grid group (params,
  optimizer states, keys, batched hyperparameters) is split over this axis: 64 members on
  a ``grid=8`` mesh run 8 per device. A group whose size does not divide the axis is
  padded with copies of its first member, which are dropped from every result and
  checkpoint. :func:`~funcnn.train.fit` (one model) replicates over ``"grid"``.

Results equal the single-device run up to float rounding (~1e-7 in float32: reductions
split over ``"data"`` are summed in another order, and a partitioned program is fused
differently). ``mesh=None`` is the single-device engine, bitwise unchanged. Evaluation runs
replicated (every device evaluates the whole set; its results are identical).

Checkpoints (``checkpoint_dir=``) hold global arrays: orbax writes each shard once and a
run restores onto any mesh or none (saved on 8 devices, resumed on 4 or 1).

Simulated devices: ``JAX_NUM_CPU_DEVICES=8 python script.py --mesh grid=8`` (or
``jax.config.update("jax_num_cpu_devices", 8)`` before JAX starts) gives 8 CPU devices.

Several hosts: call :func:`initialize_distributed` first thing in every process (it wraps
``jax.distributed.initialize``; arguments or ``JAX_COORDINATOR_ADDRESS`` /
``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID``); the mesh then spans every process's devices.
Each process may load only its rows of the data (:func:`process_rows`) and hand them to
:func:`shard_dataset` (``jax.make_array_from_process_local_data``); arrays that are not
already placed are replicated on every device. Only process 0 writes ``metrics.jsonl``;
orbax coordinates checkpoint writes itself (every process calls save/restore).
"""

from __future__ import annotations

import math
import os
from collections.abc import Mapping, Sequence
from typing import Any

import jax
import numpy as np
from jax.sharding import AxisType, Mesh, NamedSharding, PartitionSpec

#: Mesh axis that splits each training batch (data parallelism).
DATA = "data"
#: Mesh axis that splits the members of a vmapped grid group.
GRID = "grid"
AXES = (GRID, DATA)

MeshSpec = Mapping[str, int] | str


# ---------------------------------------------------------------------------- meshes
def parse_mesh(spec: MeshSpec) -> dict[str, int]:
    """``"grid=4,data=2"`` (or a mapping) -> ``{"grid": 4, "data": 2}``, validated.

    One size may be ``-1``: it takes the remaining devices (see :func:`make_mesh`).
    """
    if isinstance(spec, str):
        out: dict[str, int] = {}
        for part in (p.strip() for p in spec.split(",")):
            if not part:
                continue
            name, sep, size = (t.strip() for t in part.partition("="))
            if not sep:
                raise ValueError(f"parse_mesh: expected 'axis=size' pairs like 'grid=4,data=2', got {spec!r}")
            if name in out:
                raise ValueError(f"parse_mesh: axis {name!r} appears twice in {spec!r}")
            try:
                out[name] = int(size)
            except ValueError:
                raise ValueError(f"parse_mesh: size of axis {name!r} must be an int, got {size!r} in {spec!r}") from None
        if not out:
            raise ValueError(f"parse_mesh: empty mesh spec {spec!r}; expected e.g. 'grid=4,data=2'")
        spec = out
    if not isinstance(spec, Mapping):
        raise TypeError(f"parse_mesh: mesh must be a dict like {{'grid': 4, 'data': 2}} or a string 'grid=4,data=2', got {type(spec).__name__}")
    out = {}
    for name, size in spec.items():
        if name not in AXES:
            raise ValueError(f"parse_mesh: unknown mesh axis {name!r}; the axes are {AXES}")
        if not isinstance(size, (int, np.integer)) or isinstance(size, bool) or (size < 1 and size != -1):
            raise ValueError(f"parse_mesh: size of axis {name!r} must be an int >= 1 (or -1 for the rest), got {size!r}")
        out[name] = int(size)
    if list(out.values()).count(-1) > 1:
        raise ValueError(f"parse_mesh: at most one axis may have size -1, got {out}")
    return out


_SIMULATE_HINT = "; to simulate N CPU devices, start Python with JAX_NUM_CPU_DEVICES=N in the environment"


def make_mesh(devices: int | Sequence[Any] | None = None, mesh: MeshSpec | None = None) -> Mesh:
    """A :class:`jax.sharding.Mesh` over ``devices`` with named axes ``"grid"``/``"data"``.

    Args:
      devices: ``None`` (every device, on every process), an int ``n`` (the first ``n``
        of ``jax.devices()``), or a sequence of devices.
      mesh: axis sizes, ``{"grid": 4, "data": 2}`` or ``"grid=4,data=2"``; one size may be
        ``-1`` (the remaining devices). ``None``: one ``"data"`` axis over all the devices.
        With ``devices=None`` the mesh takes the first ``prod(sizes)`` devices.

    Returns:
      a mesh built by ``jax.make_mesh`` (topology-aware device order) with ``Auto`` axes,
      so ``jax.jit`` propagates shardings and inserts the collectives.
    """
    all_devices = jax.devices()
    if devices is None:
        devs = list(all_devices)
        explicit = False
    elif isinstance(devices, (int, np.integer)) and not isinstance(devices, bool):
        if not 1 <= devices <= len(all_devices):
            raise ValueError(
                f"make_mesh: devices={int(devices)} but {len(all_devices)} device(s) are visible "
                f"({all_devices[0].platform}){_SIMULATE_HINT if all_devices[0].platform == 'cpu' else ''}"
            )
        devs = list(all_devices[: int(devices)])
        explicit = True
    elif isinstance(devices, Sequence) and not isinstance(devices, (str, bytes)) and len(devices) > 0:
        devs = list(devices)
        explicit = True
    else:
        raise TypeError(f"make_mesh: devices must be None, an int or a non-empty sequence of devices, got {devices!r}")
    sizes = parse_mesh(mesh) if mesh is not None else {DATA: -1}
    known = math.prod(s for s in sizes.values() if s != -1)
    if -1 in sizes.values():
        if len(devs) % known:
            raise ValueError(f"make_mesh: {len(devs)} devices do not divide into a mesh {sizes} (the fixed axes need a multiple of {known})")
        sizes = {k: (len(devs) // known if v == -1 else v) for k, v in sizes.items()}
    total = math.prod(sizes.values())
    if total > len(devs) or (explicit and total != len(devs)):
        hint = _SIMULATE_HINT if devs[0].platform == "cpu" and not explicit else ""
        raise ValueError(f"make_mesh: mesh {sizes} needs {total} devices but {len(devs)} were given{hint}")
    devs = devs[:total]
    return jax.make_mesh(
        tuple(sizes.values()), tuple(sizes), axis_types=(AxisType.Auto,) * len(sizes), devices=devs
    )


def mesh_from_flags(
    devices: int | None = None, mesh: MeshSpec | None = None, *, default_axis: str = GRID
) -> Mesh | None:
    """The mesh an experiment script's ``--devices N`` / ``--mesh grid=4,data=2`` ask for.

    - ``--mesh`` given: that mesh (over the first ``N`` devices when ``--devices`` is given
      too; then one size may be ``-1``).
    - only ``--devices N``: one ``default_axis`` axis of size ``N`` (``"grid"`` for grid
      studies, ``"data"`` for single-model training).
    - neither: every visible device on ``default_axis``; ``None`` (the single-device
      engine) when only one device is visible. ``--devices 1`` also gives ``None``.
    """
    if default_axis not in AXES:
        raise ValueError(f"mesh_from_flags: default_axis must be one of {AXES}, got {default_axis!r}")
    if devices is not None and (not isinstance(devices, (int, np.integer)) or isinstance(devices, bool) or devices < 1):
        raise ValueError(f"mesh_from_flags: --devices must be an int >= 1, got {devices!r}")
    if mesh is not None and not (isinstance(mesh, str) and not mesh.strip()):
        return make_mesh(devices, mesh)
    n = len(jax.devices()) if devices is None else int(devices)
    if n == 1:
        return None
    return make_mesh(n, {default_axis: n})


def axis_size(mesh: Mesh | None, axis: str) -> int:
    """Size of ``axis`` in ``mesh`` (1 if the mesh lacks it or is None)."""
    if mesh is None:
        return 1
    return int(dict(mesh.shape).get(axis, 1))


def check_mesh(fn: str, mesh: Any) -> Mesh | None:
    """Validate a ``mesh=`` argument (None or a Mesh whose axes are ``grid``/``data``)."""
    if mesh is None:
        return None
    if not isinstance(mesh, Mesh):
        raise TypeError(f"{fn}: mesh must be a jax.sharding.Mesh (see funcnn.train.parallel.make_mesh) or None, got {type(mesh).__name__}")
    bad = [a for a in mesh.axis_names if a not in AXES]
    if bad:
        raise ValueError(f"{fn}: mesh axis {bad[0]!r} is not understood; use axes {AXES} (mesh axes: {tuple(mesh.axis_names)})")
    return mesh


# ---------------------------------------------------------------------------- shardings
def replicated(mesh: Mesh) -> NamedSharding:
    """Every device holds the whole array."""
    return NamedSharding(mesh, PartitionSpec())


def members_sharding(mesh: Mesh) -> NamedSharding:
    """Leading (member) axis split over ``"grid"`` (replicated when the mesh lacks it)."""
    return NamedSharding(mesh, PartitionSpec(GRID if GRID in mesh.axis_names else None))


def batch_sharding(mesh: Mesh, *, members: bool = False) -> NamedSharding:
    """A batch's example axis split over ``"data"`` (after the member axis when ``members``)."""
    d = DATA if DATA in mesh.axis_names else None
    if members:
        return NamedSharding(mesh, PartitionSpec(GRID if GRID in mesh.axis_names else None, d))
    return NamedSharding(mesh, PartitionSpec(d))


def put(tree: Any, sharding: Any) -> Any:
    """Place a pytree with ``sharding`` (a Sharding or a matching pytree of them).

    Works across processes too: an array not already laid out as asked is rebuilt from its
    host value with ``jax.make_array_from_callback`` (each process supplies the pieces of
    its own devices, so every process must hold the same value, as after a seeded init).
    """
    shardings = (
        jax.tree.map(lambda _: sharding, tree) if isinstance(sharding, jax.sharding.Sharding) else sharding
    )

    def one(a: Any, s: jax.sharding.Sharding) -> jax.Array:
        if isinstance(a, jax.Array) and a.sharding == s:
            return a
        if s.is_fully_addressable:
            return jax.device_put(a, s)
        host = to_host(a)
        return jax.make_array_from_callback(host.shape, s, lambda idx: host[idx])

    return jax.tree.map(one, tree, shardings)


def to_host(tree: Any) -> Any:
    """NumPy values of a pytree; arrays spread over several processes are all-gathered
    (``multihost_utils.process_allgather``), so every process gets the whole value."""

    def one(a: Any) -> Any:
        if isinstance(a, jax.Array) and not a.is_fully_addressable and not a.is_fully_replicated:
            from jax.experimental import multihost_utils

            return np.asarray(multihost_utils.process_allgather(a, tiled=True))
        return np.asarray(a)

    return jax.tree.map(one, tree)


# ---------------------------------------------------------------------------- data
def process_rows(mesh: Mesh, n: int) -> slice:
    """The rows ``[start, stop)`` of an ``n``-example dataset this process feeds.

    Load ``x[process_rows(mesh, n)]`` (and the same rows of ``y``) in each process and
    pass them to :func:`shard_dataset` with ``process_local=True``. ``n`` must divide by
    the ``"data"`` axis size. One process: ``slice(0, n)``.
    """
    s = batch_sharding(mesh)
    _check_divisible("process_rows", n, mesh)
    idx = [ix[0] for ix in s.addressable_devices_indices_map((n,)).values()]
    starts = [i.start or 0 for i in idx]
    stops = [n if i.stop is None else i.stop for i in idx]
    lo, hi = min(starts), max(stops)
    if sum(b - a for a, b in {(a, b) for a, b in zip(starts, stops)}) != hi - lo:
        raise ValueError("process_rows: this process's devices do not hold one contiguous block of rows")
    return slice(lo, hi)


def _check_divisible(fn: str, n: int, mesh: Mesh) -> None:
    d = axis_size(mesh, DATA)
    if n % d:
        raise ValueError(f"{fn}: {n} examples do not split evenly over the 'data' axis of size {d}; drop {n % d} example(s)")


def shard_dataset(mesh: Mesh, data: Any, *, process_local: bool = False) -> Any:
    """Arrays (a pytree, e.g. ``(x, y)``) laid out with their example axis split over ``"data"``.

    Args:
      mesh: the mesh (replicated over ``"grid"``).
      data: arrays with a common leading example axis.
      process_local: the arrays are this process's rows only (see :func:`process_rows`);
        the global arrays are assembled with ``jax.make_array_from_process_local_data``.
        Otherwise they are the whole dataset, identical in every process.

    Returns:
      global ``jax.Array`` s, ready for ``fit(..., mesh=mesh)``/``run_grid``, which keep the
      sharding data arrives with. Replicating (the default for unplaced data) is faster
      for small datasets; sharding saves device memory for large ones.
    """
    s = batch_sharding(mesh)

    def one(a: Any) -> jax.Array:
        a = np.asarray(a) if not isinstance(a, jax.Array) else a
        if process_local:
            return jax.make_array_from_process_local_data(s, np.asarray(a))
        _check_divisible("shard_dataset", a.shape[0], mesh)
        return put(a, s)

    return jax.tree.map(one, data)


# ---------------------------------------------------------------------------- processes
def initialize_distributed(
    coordinator_address: str | None = None,
    num_processes: int | None = None,
    process_id: int | None = None,
    *,
    local_device_ids: Sequence[int] | None = None,
    initialization_timeout: int = 300,
    multiprocess: bool | None = None,
) -> bool:
    """Join a multi-process (multi-host) JAX run when one is asked for; call before other JAX work.

    Wraps ``jax.distributed.initialize``. A multi-process start happens only when something
    asks for one (:func:`multiprocess_request` lists what does): an argument here,
    ``JAX_COORDINATOR_ADDRESS``, ``JAX_NUM_PROCESSES`` > 1, a scheduler that launched several
    tasks (``SLURM_NTASKS`` > 1, ``OMPI_COMM_WORLD_SIZE`` > 1 under ``mpirun``),
    ``FUNCNN_DISTRIBUTED=1`` or ``multiprocess=True``. A machine that merely has ``mpi4py``
    installed, ``OMPI_MCA_*`` variables set or runs in a Kubernetes pod runs single-process.
    Each argument left ``None`` is read from ``JAX_COORDINATOR_ADDRESS``,
    ``JAX_NUM_PROCESSES``, ``JAX_PROCESS_ID``, or else left to JAX's own cluster detection
    (SLURM, Open MPI, TPU pods). On CPU the cross-process collectives use gloo.

    Args:
      multiprocess: ``True`` starts a multi-process run even when nothing in the environment
        asks for one; ``False`` never starts one; ``None`` (default) decides from the
        arguments and the environment.

    Returns:
      True if this process joined a multi-process run (or had already), False for a plain
      single-process run (nothing initialized).

    Raises:
      RuntimeError: a start was requested and ``jax.distributed.initialize`` failed; the
        message says what asked for the start and which variables to set.
      ValueError: ``JAX_NUM_PROCESSES`` / ``JAX_PROCESS_ID`` that are not ints.
    """
    from jax._src import distributed as _dist  # the state object jax.distributed uses

    if _dist.global_state.client is not None:
        return True
    if multiprocess is False:
        return False
    env = os.environ
    coordinator_address = coordinator_address or env.get("JAX_COORDINATOR_ADDRESS") or None
    if num_processes is None and env.get("JAX_NUM_PROCESSES"):
        num_processes = _env_int("JAX_NUM_PROCESSES")
    if process_id is None and env.get("JAX_PROCESS_ID"):
        process_id = _env_int("JAX_PROCESS_ID")
    if coordinator_address is not None:
        reason = f"coordinator address {coordinator_address!r}"
    elif num_processes is not None and num_processes > 1:
        reason = f"num_processes={num_processes}"
    elif multiprocess:
        reason = "multiprocess=True"
    else:
        reason = multiprocess_request(env)
    if reason is None:
        return False
    # Cross-process collectives on CPU devices need an implementation (gloo ships with
    # jaxlib); GPU/TPU runs ignore this setting.
    jax.config.update("jax_cpu_collectives_implementation", "gloo")
    try:
        jax.distributed.initialize(
            coordinator_address=coordinator_address,
            num_processes=num_processes,
            process_id=process_id,
            local_device_ids=local_device_ids,
            initialization_timeout=initialization_timeout,
        )
    except Exception as e:  # noqa: BLE001 - re-raised with what was detected
        raise RuntimeError(
            f"initialize_distributed: a multi-process start was requested ({reason}) but "
            f"jax.distributed.initialize failed: {type(e).__name__}: {e}. Set "
            "JAX_COORDINATOR_ADDRESS=host:port, JAX_NUM_PROCESSES and JAX_PROCESS_ID in every "
            "process, or, for a single-process run, unset what asked for the start "
            "(or pass multiprocess=False)."
        ) from e
    return True


#: Environment variables that ask for a multi-process start when > 1 (scheduler task counts).
_TASK_COUNT_VARIABLES = ("JAX_NUM_PROCESSES", "SLURM_NTASKS", "SLURM_STEP_NUM_TASKS", "OMPI_COMM_WORLD_SIZE",
                         "PMI_SIZE")


def multiprocess_request(env: Mapping[str, str] | None = None) -> str | None:
    """What in ``env`` (default ``os.environ``) asks for a multi-process run, or ``None``.

    Asks: ``JAX_COORDINATOR_ADDRESS`` (non-empty); ``FUNCNN_DISTRIBUTED`` = 1/true/yes; a task
    count > 1 in ``JAX_NUM_PROCESSES``, ``SLURM_NTASKS``, ``SLURM_STEP_NUM_TASKS``,
    ``OMPI_COMM_WORLD_SIZE`` (set by ``mpirun``) or ``PMI_SIZE``. Does not ask: an installed
    ``mpi4py``, ``OMPI_MCA_*`` settings, ``KUBERNETES_SERVICE_HOST``, a one-task SLURM job.

    Returns:
      e.g. ``"SLURM_NTASKS=4"``: the first variable that asks, as ``NAME=value``.
    """
    env = os.environ if env is None else env
    if env.get("JAX_COORDINATOR_ADDRESS"):
        return f"JAX_COORDINATOR_ADDRESS={env['JAX_COORDINATOR_ADDRESS']}"
    flag = env.get("FUNCNN_DISTRIBUTED", "").strip().lower()
    if flag in ("1", "true", "yes", "on"):
        return f"FUNCNN_DISTRIBUTED={env['FUNCNN_DISTRIBUTED']}"
    for name in _TASK_COUNT_VARIABLES:
        value = env.get(name, "").strip()
        try:
            count = int(value.split("(")[0]) if value else 0  # SLURM may write "4(x2)"
        except ValueError:
            continue
        if count > 1:
            return f"{name}={value}"
    return None


def _env_int(name: str) -> int:
    try:
        return int(os.environ[name])
    except ValueError:
        raise ValueError(f"initialize_distributed: environment variable {name} must be an int, got {os.environ[name]!r}") from None


def is_primary() -> bool:
    """True in process 0 (the one that writes result files)."""
    return jax.process_index() == 0


__all__ = [
    "AXES",
    "DATA",
    "GRID",
    "axis_size",
    "batch_sharding",
    "initialize_distributed",
    "is_primary",
    "make_mesh",
    "members_sharding",
    "mesh_from_flags",
    "multiprocess_request",
    "parse_mesh",
    "process_rows",
    "put",
    "replicated",
    "shard_dataset",
    "to_host",
]
