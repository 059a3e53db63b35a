"""ClipModel end to end on the exported tiny CLIP: parity with PyTorch's CLIPModel,
the use cases (classify, similarity, search), load() choices and typed errors."""

from __future__ import annotations

import io
import json
import shutil
from pathlib import Path

import numpy as np
import pytest
from PIL import Image

import cliprt
from cliprt.errors import FormatVersionError, InputError, ModelFolderError
from cliprt.manifest import FORMAT_VERSION
from cliprt.runtime import ClipModel, Index

torch = pytest.importorskip("torch")


def _image(seed: int, w: int, h: int) -> Image.Image:
    rng = np.random.default_rng(seed)
    y, x = np.mgrid[0:h, 0:w]
    arr = np.stack([(x * (seed + 1)) % 256, (y * 3) % 256, ((x + y) * 5) % 256], axis=-1)
    return Image.fromarray(np.clip(arr + rng.integers(-30, 30, arr.shape), 0, 255).astype(np.uint8))


@pytest.fixture(scope="module")
def image_files(tmp_path_factory: pytest.TempPathFactory) -> list[Path]:
    folder = tmp_path_factory.mktemp("images")
    paths = []
    for i, (w, h, fmt) in enumerate(
        [(320, 240, "PNG"), (200, 500, "JPEG"), (224, 224, "PNG"), (999, 77, "JPEG")]
    ):
        path = folder / f"img{i}.{fmt.lower()}"
        _image(i, w, h).save(path, fmt)
        paths.append(path)
    return paths


TEXTS = ["a photo of a cat", "a dog", "a red circle on a blue background", "word " * 90]


def _torch_embeddings(torch_clip, tiny_clip_dir: Path, paths: list[Path], texts: list[str]):
    from transformers import CLIPImageProcessor, CLIPTokenizerFast

    proc = CLIPImageProcessor.from_pretrained(str(tiny_clip_dir), use_fast=False)
    tok = CLIPTokenizerFast.from_pretrained(str(tiny_clip_dir))
    pixels = proc(images=[Image.open(p) for p in paths], return_tensors="pt")["pixel_values"]
    t = tok(texts, padding=True, truncation=True, max_length=77, return_tensors="pt")
    with torch.no_grad():
        img = torch_clip.get_image_features(pixel_values=pixels)
        txt = torch_clip.get_text_features(
            input_ids=t["input_ids"], attention_mask=t["attention_mask"]
        )
        probs = torch_clip(pixel_values=pixels, **t).logits_per_image.softmax(dim=-1)
    img = img / img.norm(dim=-1, keepdim=True)
    txt = txt / txt.norm(dim=-1, keepdim=True)
    return img.numpy(), txt.numpy(), probs.numpy()


def test_fp32_equals_pytorch(
    model32: ClipModel, torch_clip, tiny_clip_dir: Path, image_files
) -> None:
    img_ref, txt_ref, probs_ref = _torch_embeddings(torch_clip, tiny_clip_dir, image_files, TEXTS)
    img = model32.encode_images(image_files)  # plain files carry no EXIF: same pixels as HF
    txt = model32.encode_texts(TEXTS)
    assert img.dtype == txt.dtype == np.float32
    assert img.shape == (4, model32.embed_dim) and txt.shape == (4, model32.embed_dim)
    assert np.abs(img - img_ref).max() <= 1e-4
    assert np.abs(txt - txt_ref).max() <= 1e-4
    np.testing.assert_allclose(np.linalg.norm(img, axis=1), 1.0, atol=1e-6)
    assert np.abs(model32.classify(image_files, TEXTS) - probs_ref).max() <= 1e-4


def test_logit_scale_is_the_exp_of_the_parameter(model32: ClipModel, torch_clip) -> None:
    assert model32.logit_scale == pytest.approx(
        float(torch_clip.logit_scale.detach().exp()), rel=1e-6
    )


@pytest.mark.parametrize(("precision", "min_cos"), [("int8", 0.99), ("fp16", 0.999)])
def test_other_precisions_track_fp32(
    tiny_model_dir: Path, model32: ClipModel, image_files, precision: str, min_cos: float
) -> None:
    with cliprt.load(tiny_model_dir, precision=precision, device="cpu", threads=1) as m:
        assert m.precision == precision
        for a, b in [
            (m.encode_images(image_files), model32.encode_images(image_files)),
            (m.encode_texts(TEXTS), model32.encode_texts(TEXTS)),
        ]:
            assert (a * b).sum(axis=1).min() >= min_cos


def test_every_input_type_gives_the_same_embedding(model32: ClipModel, image_files) -> None:
    path = image_files[0]
    data = path.read_bytes()
    pil = Image.open(path)
    with open(path, "rb") as f:
        inputs = [
            str(path),
            path,
            data,
            bytearray(data),
            io.BytesIO(data),
            f,
            pil,
            np.asarray(pil.convert("RGB")),
        ]
        embs = model32.encode_images(inputs, batch_size=3)
    assert np.abs(embs - embs[0]).max() <= 1e-6
    assert np.array_equal(model32.encode_images(path), model32.encode_images([path]))  # a lone item
    stack = np.stack(
        [np.asarray(Image.open(p).convert("RGB").resize((64, 48))) for p in image_files]
    )
    assert model32.encode_images(stack).shape == (4, model32.embed_dim)  # an NxHxWx3 batch


def test_batching_and_padding_do_not_change_results(model32: ClipModel, image_files) -> None:
    one = model32.encode_images(image_files, batch_size=1)
    assert np.abs(one - model32.encode_images(image_files, batch_size=3)).max() <= 1e-5
    alone = model32.encode_texts(["a cat"])
    padded = model32.encode_texts(["a cat", "word " * 90])[:1]  # padded to 77 with pad_id
    assert np.abs(alone - padded).max() <= 1e-5
    assert (
        np.abs(model32.encode_texts(TEXTS, batch_size=1) - model32.encode_texts(TEXTS)).max()
        <= 1e-5
    )


def test_many_images_pipeline_with_progress(model32: ClipModel, tmp_path: Path, capsys) -> None:
    paths = []
    for i in range(37):
        p = tmp_path / f"{i}.png"
        _image(i, 40 + i, 30 + 2 * i).save(p)
        paths.append(p)
    got = model32.encode_images(paths, batch_size=8, progress=True)
    assert "images: 37/37" in capsys.readouterr().err
    want = np.concatenate([model32.encode_images([p]) for p in paths])
    assert np.abs(got - want).max() <= 1e-5


def test_classify_and_similarity(model32: ClipModel, image_files) -> None:
    labels = ["a cat", "a dog", "a bird"]
    probs = model32.classify(image_files, labels)
    assert probs.shape == (4, 3) and probs.dtype == np.float32
    np.testing.assert_allclose(probs.sum(axis=1), 1.0, atol=1e-6)
    sim = model32.similarity(image_files, labels)
    logits = model32.logit_scale * sim.astype(np.float64)
    want = np.exp(logits - logits.max(1, keepdims=True))
    np.testing.assert_allclose(probs, want / want.sum(1, keepdims=True), atol=1e-6)


def test_index_search(model32: ClipModel, image_files, tmp_path: Path) -> None:
    index = model32.build_index(image_files)
    assert isinstance(index, Index) and len(index) == 4
    scores, ids = model32.search(index, images=image_files, k=2)
    assert ids[:, 0].tolist() == [0, 1, 2, 3]  # each image finds itself first
    np.testing.assert_allclose(scores[:, 0], 1.0, atol=1e-5)
    scores, ids = model32.search(index, texts=["a cat", "a dog"], k=4)
    sim = model32.similarity(image_files, ["a cat", "a dog"]).T
    for row in range(2):
        assert ids[row].tolist() == np.argsort(-sim[row], kind="stable").tolist()
        np.testing.assert_allclose(scores[row], np.sort(sim[row])[::-1], atol=1e-5)
    index.save(tmp_path / "x.cix")
    again = Index.load(tmp_path / "x.cix")
    assert np.array_equal(
        model32.search(again, texts=["a cat"], k=2)[1],
        model32.search(index, texts=["a cat"], k=2)[1],
    )
    with pytest.raises(InputError, match="exactly one of texts= or images="):
        model32.search(index, texts=["a"], images=image_files)
    with pytest.raises(InputError, match="holds 8-d vectors"):
        model32.search(Index(8), texts=["a"])


def test_load_choices_are_visible(tiny_model_dir: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    # A VNNI CPU without bf16: auto is int8 with or without OpenVINO installed.
    monkeypatch.setenv("CLIPRT_CPU_FLAGS", "avx2 avx512f avx512bw avx512_vnni")
    with cliprt.load(tiny_model_dir, threads=1, warmup_batches=(1, 3)) as m:
        assert (m.device, m.precision) == ("cpu", "int8")  # auto on a CPU box: int8, present
        assert "VNNI" in m.precision_reason and m.backend == "onnxruntime"
        assert m.providers == {"vision": ["CPUExecutionProvider"], "text": ["CPUExecutionProvider"]}
        so = m.vision.session.get_session_options()
        assert (so.intra_op_num_threads, so.inter_op_num_threads) == (1, 1)
        assert so.get_session_config_entry("session.intra_op.allow_spinning") == "1"
        # Spinning during a run only: the Python work between runs keeps its cores.
        assert so.get_session_config_entry("session.force_spinning_stop") == "1"
    import onnxruntime as ort

    mine = ort.SessionOptions()
    mine.intra_op_num_threads = 1
    mine.add_session_config_entry("session.intra_op.allow_spinning", "0")
    with cliprt.load(tiny_model_dir, precision="fp32", device="cpu", session_options=mine) as m:
        assert (
            m.text.session.get_session_options().get_session_config_entry(
                "session.intra_op.allow_spinning"
            )
            == "0"
        )


def _copy(folder: Path, tmp_path: Path) -> Path:
    out = tmp_path / "copy"
    shutil.copytree(folder, out)
    return out


def _edit_manifest(folder: Path, edit) -> None:
    path = folder / "manifest.json"
    data = json.loads(path.read_text())
    edit(data)
    path.write_text(json.dumps(data))


def test_auto_falls_back_to_fp32_when_int8_is_absent(
    tiny_model_dir: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setenv("CLIPRT_CPU_FLAGS", "avx2 fma")  # no bf16: OpenVINO is not chosen
    folder = _copy(tiny_model_dir, tmp_path)

    def drop(data):
        for tower in data["towers"].values():
            tower.pop("int8")
            tower.pop("fp16")

    _edit_manifest(folder, drop)
    with cliprt.load(folder, device="cpu", threads=1) as m:
        assert m.precision == "fp32"
    with pytest.raises(ModelFolderError, match=r"no int8 towers \(it has: fp32\)"):
        cliprt.load(folder, precision="int8", device="cpu")


def test_model_folder_errors(tiny_model_dir: Path, tmp_path: Path) -> None:
    folder = _copy(tiny_model_dir, tmp_path)
    (folder / "text.fp32.onnx").unlink()
    with pytest.raises(
        ModelFolderError, match=r"text.fp32.onnx is listed in manifest.json but missing"
    ):
        cliprt.load(folder, precision="fp32", device="cpu")
    cliprt.load(folder, precision="int8", device="cpu", threads=1).close()  # other files are fine

    folder = tmp_path / "altered"
    shutil.copytree(tiny_model_dir, folder)
    data = bytearray((folder / "vision.int8.onnx").read_bytes())
    data[len(data) // 2] ^= 0xFF
    (folder / "vision.int8.onnx").write_bytes(bytes(data))
    with pytest.raises(ModelFolderError, match=r"vision.int8.onnx sha256 .* differs"):
        cliprt.load(folder, precision="int8", device="cpu")
    (folder / "tokenizer.json").write_text("{}")
    with pytest.raises(ModelFolderError, match=r"tokenizer.json has \d+ bytes"):
        cliprt.load(folder, precision="fp32", device="cpu")

    newer = tmp_path / "newer"
    shutil.copytree(tiny_model_dir, newer)
    _edit_manifest(newer, lambda d: d.update(format_version=d["format_version"] + 1))
    v = FORMAT_VERSION
    with pytest.raises(
        FormatVersionError, match=rf"format_version {v + 1}, this cliprt reads up to {v}"
    ):
        cliprt.load(newer)


def test_unknown_model_names_list_shipped_models(tmp_path: Path) -> None:
    with pytest.raises(
        ModelFolderError,
        match=r"not an existing path nor a shipped model \(shipped: .*\).*cliprt export",
    ):
        cliprt.load("no-such-model")
    with pytest.raises(ModelFolderError, match=r"not an existing path"):
        cliprt.load(tmp_path / "nowhere" / "model")
    with pytest.raises(ModelFolderError, match=r"no manifest\.json"):
        cliprt.load(tmp_path)


def test_shipped_name_resolves_inside_the_package() -> None:
    from importlib import resources

    from cliprt.runtime.model import resolve_model, shipped_models

    for name in shipped_models():
        assert resolve_model(name) == Path(str(resources.files("cliprt") / "models" / name))


def test_bad_inputs_are_typed_and_named(model32: ClipModel, image_files, tmp_path: Path) -> None:
    bad = tmp_path / "broken.jpg"
    bad.write_bytes(b"\xff\xd8\xff\xe0 not really a jpeg")
    items = [*image_files, *image_files, bad, *image_files]
    with pytest.raises(InputError, match=r"image 8 \('.*broken.jpg'\)"):
        model32.encode_images(items, batch_size=3)  # found in a later, prefetched batch
    with pytest.raises(InputError, match="no images given"):
        model32.encode_images([])
    with pytest.raises(InputError, match="no texts given"):
        model32.encode_texts([])
    with pytest.raises(InputError, match="text 0 is an empty string"):
        model32.encode_texts("")
    with pytest.raises(InputError, match="no labels given"):
        model32.classify(image_files, [])
    with pytest.raises(InputError, match=r"label 1 is a int"):
        model32.classify(image_files, ["a cat", 7])
    with pytest.raises(InputError, match=r"label 0 is an empty string"):
        model32.classify(image_files, [""])
    with pytest.raises(InputError, match="batch_size must be a positive int"):
        model32.encode_images(image_files, batch_size=0)
    with pytest.raises(InputError, match="images must be a list"):
        model32.encode_images(12)
    # The model still works after errors (no stuck pool, no poisoned session).
    assert model32.encode_images(image_files).shape == (4, model32.embed_dim)


def test_the_shipped_model_loads_by_name() -> None:
    from cliprt.runtime.model import shipped_models

    if "shapes" not in shipped_models():
        pytest.skip("no shipped 'shapes' model in this checkout")
    with cliprt.load("shapes", precision="fp32", device="cpu", threads=1) as m:
        assert m.folder.name == "shapes"
        assert m.encode_texts(["a photo of a red circle"]).shape == (1, m.embed_dim)
