"""The layer list (tfe.layers): what describe() writes, that a file without a list (written
before lists were stored) runs the network its architecture describes with the same logits
in both readers, and that a BN eps other than tfe's default is used by every runner."""

import json

import numpy as np
import pytest

from model_seeds import STATUS, build, tensors_of, write_seeds
from tfe import layers, model_reader, modelfile, models
from tfe.data.transforms import Normalizer
from tfe.function import no_grad
from tfe.model_reader import ModelFileError
from tfe.tensor import Tensor

NAMES = ["resnet12", "resnet18-2", "deepid", "tfe"]


@pytest.fixture(scope="module")
def seeds(tmp_path_factory):
    return write_seeds(tmp_path_factory.mktemp("seeds"))


def _meta(path):
    return tensors_of(path.read_bytes())[1]


def _without_layers(path, out):
    """A copy of ``path`` as tfe wrote it before the layer list was stored."""
    tensors, meta = tensors_of(path.read_bytes())
    meta.pop("layers")
    out.write_bytes(build(tensors, meta))
    return out


def _c_logits(c_api, path, x):
    status, message, handle = c_api.load(path)
    assert status == 0, message
    try:
        z = np.zeros((len(x), c_api.lib.tfe_model_num_classes(handle)), np.float32)
        assert c_api.lib.tfe_forward(handle, x.ctypes.data, len(x), z.ctypes.data) == 0
        return z
    finally:
        c_api.free(handle)


@pytest.mark.parametrize("name", NAMES)
def test_the_stored_list_is_what_describe_gives_and_round_trips(seeds, name):
    meta = _meta(seeds[name])
    stored = json.loads(meta["layers"])
    model = modelfile.load_model(seeds[name])
    assert stored == model.model.layers
    # the list the architecture describes is the one describe() gives for the model it builds
    arch = json.loads(meta["architecture"])
    built = models.build(arch, input_size=48)
    assert layers.describe(built) == stored
    assert model_reader.layers_from_architecture(arch, 48) == stored
    assert meta["format"] == "tfe-1"  # the same network for readers without layer lists
    # the loaded network holds exactly the file's tensors
    assert set(model.model.state_dict()) == set(built.state_dict())


@pytest.mark.parametrize("name", NAMES)
def test_a_file_without_a_layer_list_gives_the_same_logits(c_api, seeds, tmp_path, name):
    old = _without_layers(seeds[name], tmp_path / "old.safetensors")
    x = np.random.default_rng(3).standard_normal((3, 1, 48, 48)).astype(np.float32)
    new_py, old_py = modelfile.load_model(seeds[name]), modelfile.load_model(old)
    np.testing.assert_array_equal(old_py.logits(x), new_py.logits(x))
    np.testing.assert_array_equal(_c_logits(c_api, old, x), _c_logits(c_api, seeds[name], x))
    np.testing.assert_allclose(_c_logits(c_api, old, x), new_py.logits(x), rtol=0, atol=1e-4)


def test_the_layer_network_computes_the_model_it_describes(seeds):
    """LayerNet (the loader's network, from the list) against the model class itself."""
    for name in NAMES:
        loaded = modelfile.load_model(seeds[name])
        model = models.build(loaded.model.arch, input_size=48)
        model.load_state_dict(loaded.model.state_dict())
        model.eval()
        x = np.random.default_rng(4).standard_normal((2, 1, 48, 48)).astype(np.float32)
        with no_grad():
            want = np.asarray(model(Tensor(x)).data)
        np.testing.assert_array_equal(loaded.logits(x), want)


def _eps_model(eps):
    """A TFE model whose every batch norm has ``eps``, with realistic statistics."""
    rng = np.random.default_rng(7)
    m = models.TFE(models.DeepID(4), models.ResNet((1, 1, 1), 5), 5)
    state = {k: np.array(v, copy=True) for k, v in m.state_dict().items()}
    for k, v in state.items():
        if k.endswith("running_var"):  # variances of eps's size, so that eps matters
            state[k] = rng.uniform(0.05, 0.2, v.shape).astype(np.float32)
    m.load_state_dict(state)
    for _, mod in m.named_modules():
        if hasattr(mod, "eps"):
            mod.eps = eps
    return m


@pytest.fixture(scope="module")
def eps_file(tmp_path_factory):
    norm = Normalizer.fit(np.random.default_rng(8).integers(0, 256, (4, 48, 48), np.uint8))
    path = tmp_path_factory.mktemp("eps") / "eps.safetensors"
    modelfile.save_model(path, _eps_model(0.1), norm, [f"c{j}" for j in range(5)])
    return path


def test_a_stored_eps_is_used_by_both_readers(c_api, eps_file, tmp_path):
    meta = _meta(eps_file)
    eps = {layer["eps"] for layer in json.loads(meta["layers"]) if "eps" in layer}
    assert eps == {0.1}
    # a reader that ignored the list would run eps 1e-5: the file says it is not tfe-1
    assert meta["format"] == "tfe-2"
    model = modelfile.load_model(eps_file)  # the self-test passes: the stored eps is used
    x = model.selftest_input
    np.testing.assert_allclose(_c_logits(c_api, eps_file, x), model.selftest_logits, rtol=1e-5,
                               atol=1e-5)

    # the same weights with the list's eps set back to 1e-5 fail the self-test in both
    tensors, meta = tensors_of(eps_file.read_bytes())
    meta["layers"] = json.dumps([dict(layer, eps=1e-5) if "eps" in layer else layer
                                 for layer in json.loads(meta["layers"])])
    wrong = tmp_path / "wrong-eps.safetensors"
    wrong.write_bytes(build(tensors, meta))
    with pytest.raises(ModelFileError) as info:
        modelfile.load_model(wrong)
    assert info.value.status == "TFE_ERR_SELFTEST"
    status, message, _ = c_api.load(wrong)
    assert status == STATUS["TFE_ERR_SELFTEST"] and message == str(info.value)


def test_the_onnx_export_uses_the_stored_eps(eps_file, tmp_path):
    onnx = pytest.importorskip("onnx", reason="the ONNX export needs the `onnx` package")
    ort = pytest.importorskip("onnxruntime", reason="running the export needs onnxruntime")
    from tfe.export_onnx import export

    out = export(eps_file, tmp_path / "eps.onnx")
    graph = onnx.load(str(out)).graph
    eps = {a.f for n in graph.node if n.op_type == "BatchNormalization" for a in n.attribute
           if a.name == "epsilon"}
    assert eps == {np.float32(0.1)}
    model = modelfile.load_model(eps_file)
    pixels = np.random.default_rng(9).integers(0, 256, (3, 48, 48)).astype(np.uint8)
    sess = ort.InferenceSession(str(out), providers=["CPUExecutionProvider"])
    logits, _ = sess.run(None, {"pixels": pixels[:, None].astype(np.float32)})
    want = model.logits(model.normalizer.apply(pixels))
    np.testing.assert_allclose(logits, want, rtol=0, atol=1e-4 * max(1.0, np.abs(want).max()))
