"""Every public import path from before the house moved still works and finds the same object."""

import importlib

import pytest

# old module path -> the module it now is
MOVED_MODULES = {
    "funcnn.choice": "funcnn.nn.choice",
    "funcnn.combinators": "funcnn.nn.combinators",
    "funcnn.initializers": "funcnn.nn.initializers",
    "funcnn.models": "funcnn.nn.models",
    "funcnn.diagnostics": "funcnn.nn.diagnostics",
    "funcnn.registry": "funcnn._ops.registry",
    "funcnn.conv_autotune": "funcnn._ops.conv_autotune",
    "funcnn.parallel": "funcnn.train.parallel",
    "funcnn.train.cli": "funcnn.study.cli",
    "funcnn.train.plots": "funcnn.study.plots",
    "funcnn.train.runs": "funcnn.study.runs",
    "funcnn.train.timing": "funcnn.study.timing",
    "funcnn.train.compilation": "funcnn.study.compilation",
}


@pytest.mark.parametrize("old,new", sorted(MOVED_MODULES.items()))
def test_a_moved_module_is_found_at_its_old_path(old, new):
    old_module = importlib.import_module(old)
    assert old_module is importlib.import_module(new)
    parent, _, child = old.rpartition(".")
    assert getattr(importlib.import_module(parent), child) is old_module  # funcnn.choice as an attribute too
    public = getattr(old_module, "__all__", None) or [n for n in vars(old_module) if not n.startswith("_")]
    assert public


def test_every_old_layers_name_is_the_nn_object():
    import funcnn.layers as old
    import funcnn.nn as nn

    assert len(old.__all__) == 25
    for name in old.__all__:
        assert getattr(old, name) is getattr(nn, name), name
    from funcnn.layers import Dense, Relu  # the form the experiments and the README used

    assert Dense is nn.Dense and Relu is nn.Relu


def test_old_train_names_are_the_study_and_spec_objects():
    import funcnn.study as study
    import funcnn.train as train
    from funcnn.train import results
    from funcnn.train.loop import TrainSpec
    from funcnn.train.spec import TrainSpec as spec_TrainSpec

    assert TrainSpec is spec_TrainSpec is train.TrainSpec
    for name in study.__all__:
        assert getattr(train, name) is getattr(study, name), name
        if hasattr(results, name):
            assert getattr(results, name) is getattr(study, name), name
    exec("from funcnn.train import RunDir, open_run, plot_bands", ns := {})
    assert ns["RunDir"] is study.RunDir and ns["open_run"] is study.open_run
    with pytest.raises(AttributeError, match="funcnn.train.*no attribute 'nope'"):
        train.nope  # noqa: B018


def test_top_level_names_keep_their_objects():
    import funcnn
    import funcnn.nn as nn

    for name in ("Dense", "Conv2D", "Residual", "serial", "Choice", "Layer", "Activation", "BatchNorm"):
        assert getattr(funcnn, name) is getattr(nn, name), name
    assert funcnn.initializers is nn.initializers and funcnn.models is nn.models
    assert funcnn.registry.register_activation is funcnn.register_activation
