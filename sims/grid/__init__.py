"""pandapower grid as a mosaik simulator (``sims.grid:GridSim``), contract in docs/interfaces.md.

One ``Grid`` entity per simulator; its children are the rows of the net (``Bus-3``, ``Line-7``,
``Switch-0``, ``Load-2``, ``StaticGen-4``, ``Storage-1``, ``ExtGrid-0``). META and the outputs of each
model come from one table, :data:`MODEL_SPECS`. The ``Grid`` entity also outputs every model's output as
a whole column (:data:`GRID_COLUMNS`: ``"Bus.vm_pu"`` is every bus's ``vm_pu`` as one list, in the order
of its children), which the run's recorder takes instead of one value per entity and attribute.

Modules, one concern each:

* :mod:`~sims.grid.adapter`: :class:`GridSim`, the mosaik adapter (inputs in, outputs out);
* :mod:`~sims.grid.intake`: a step's mosaik inputs into the model's input arrays at once (their layout
  planned once, checked every step, the values written with one vectorised assignment);
* :mod:`~sims.grid.output_request`: ``get_data``'s answer, column by column (each request planned once);
* :mod:`~sims.grid.model`: :class:`~sims.grid.model.GridModel`, one step without mosaik;
* :mod:`~sims.grid.spec`: the mosaik models (META);
* :mod:`~sims.grid.netindex`: loading a net, row and bus positions, entity ids;
* :mod:`~sims.grid.groups`: load groups (``load_groups``: many loads fed through one entity whose
  attributes are lists, ``LoadGroup-<name>``);
* :mod:`~sims.grid.topology`: switch states -> islands, which are supplied, energised by a grid-forming
  unit, or unsupplied (cached per switch state);
* :mod:`~sims.grid.units`: loads and shedding, static generators and curtailment, storages and SoC;
* :mod:`~sims.grid.powerflow`: the AC power flow, one call returning a typed
  :class:`~sims.grid.pf_result.PowerFlowResult`, on the lightsim2grid fast path
  (:mod:`~sims.grid.fastpath`, :mod:`~sims.grid.lsmodel`) or pandapower ``runpp``
  (:mod:`~sims.grid.fallback`);
* :mod:`~sims.grid.outputs`: the values ``get_data`` returns, built when asked for (only the columns asked).

Each step
    1. inputs are stored (they hold until a new value arrives; several sources of one attribute are
       summed, a switch is closed only if every source says so); unit powers are computed: loads
       less what is shed from them, static generators ``min(setpoint, availability)``, storages
       clipped to their power and energy limits over the step (``clipped_mw`` = setpoint - applied,
       logged warning naming the unit), ``dt_h = step_size * time_resolution / 3600``;
    2. the topology of the current switch state is analysed: islands with an ext_grid are supplied; an
       island without one but with an in-service ``grid_forming`` unit (first such sgen, else first such
       storage) gets that unit as slack (setpoint ignored, it reports the power that balanced the
       island; a storage integrates it, and what its SoC or power limit cannot cover is reported as
       ``clipped_mw`` with a warning); all other islands are unsupplied (buses NaN, their load summed
       in ``unsupplied_mw``, their units and loads output 0 MW, a storage there reports its setpoint
       as clipped);
    3. the AC power flow runs on the fast path (lightsim2grid) or on ``pandapower.runpp`` (the fallback,
       also the retry when the fast path does not converge); ``GridSim.last_path`` says which path ran
       ("fast", "runpp", "diverged");
    4. a power flow that diverges on both paths gives NaN electrical outputs (buses, lines, ext_grid,
       grid aggregates except ``unsupplied_mw``), ``pf_converged`` 0 and a logged warning with the time;
       the run continues. Unit setpoints that were applied stay applied: loads, sgens and storages
       report them and the SoC integrates them (a grid-forming storage's balancing power is unknown:
       NaN, SoC unchanged).

Every module logs to the logger ``sims.grid``.

Measured with ``python tests/bench/bench_grid.py`` on the ieee33-style net (36 buses, 40 lines,
8 switches; 2-core VM shared with other jobs, numba not installed), median of step + get_data of every
attribute of every entity: fast path 0.56 ms (8760 steps), fast path with MG1 islanded on its storage
0.69 ms, slow path 34 ms, mosaik-pandapower-2 33 ms, plain ``runpp`` 31 ms (raw lightsim2grid
``ac_pf`` about 0.02-0.07 ms of the fast step; the rest is Python around it). Fast-path bus voltages
agree with a fresh ``runpp`` within 3e-9 pu (4e-14 pu on the cold start).

Measured with ``python tests/bench/bench_grid_large.py --steps 100`` on SimBench's 1-MVLV-rural-all-0-sw
(5,477 buses, 92 transformers; every load's p and q and every generator's availability as inputs), same
VM, five runs: median step 5.6-7.9 ms with the loads' powers through one load group (8.8-13 ms with one
input per load and attribute: reading ~11,000 nested input dicts), step + get_data of every entity
35-50 ms, fresh ``runpp`` 280-420 ms (37-57x the step; the VM's speed varies by that much between runs).
Of a step, 3.1-4.8 ms is lightsim2grid's Newton-Raphson itself (three iterations, two KLU refactorisations,
of a 10,953-unknown Jacobian from the last step's voltages, tolerance 1e-8) and 1.5-3 ms the rest (the
group's lists into arrays, units, injections, flows and losses). Voltages within 3.5e-8 pu of a fresh
``runpp``.
"""

from sims.grid.adapter import GridSim, main
from sims.grid.lsmodel import FAST_PATH_TOL_PU, NR_MAXIT, NR_TOL, TRAFO_MODELS
from sims.grid.netindex import DEFAULT_MAX_VM_PU, DEFAULT_MIN_VM_PU, load_net
from sims.grid.spec import GRID_COLUMNS, GRID_OUTPUTS, META, MODEL_SPECS, ModelSpec, column_attr

__all__ = [
    "DEFAULT_MAX_VM_PU",
    "DEFAULT_MIN_VM_PU",
    "FAST_PATH_TOL_PU",
    "GRID_COLUMNS",
    "GRID_OUTPUTS",
    "META",
    "MODEL_SPECS",
    "NR_MAXIT",
    "NR_TOL",
    "TRAFO_MODELS",
    "GridSim",
    "ModelSpec",
    "column_attr",
    "load_net",
    "main",
]
