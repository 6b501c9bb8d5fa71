"""The text towers and their inputs: MiniLM loads its offline weights and embeds as a sentence
encoder should, the tokenizers are BERT's and GloVe's, the losses rank clicks first, and a tiny
training run moves the towers toward the clicks."""

from __future__ import annotations

import numpy as np
import pytest
import torch

from processors.text_features import ATTRIBUTE_KEYS, dense_width, product_features
from processors.tokens import WordIds, WordPiece, basic_words
from training.minilm import MiniLM, vocabulary
from training.text_model import ProductTable, TextPairs, TextTrainConfig, train_text_model
from training.text_towers import contrastive_loss, triplet_loss


@pytest.fixture(scope="module")
def pieces() -> WordPiece:
    return WordPiece(vocabulary())


def test_basic_words_and_wordpiece_follow_bert_uncased(pieces: WordPiece) -> None:
    assert basic_words("Crêpe  T-shirt, v-neck!") == [
        "crepe",
        "t",
        "-",
        "shirt",
        ",",
        "v",
        "-",
        "neck",
        "!",
    ]
    ids = pieces.ids("unaffable")
    assert [vocabulary()[i] for i in ids] == ["[CLS]", "una", "##ffa", "##ble", "[SEP]"]
    assert pieces.ids("x" * 500)[1] == pieces.unk
    long = pieces.ids("red " * 100)
    assert len(long) == pieces.max_tokens and long[-1] == pieces.sep
    batch, mask = pieces.batch(["red dress", "a long-sleeved striped shirt"])
    assert batch.shape == mask.shape and mask[0].sum() == 4 and batch[0, 4] == pieces.pad


def test_minilm_embeds_paraphrases_together() -> None:
    model = MiniLM.pretrained().eval()
    pieces = WordPiece(vocabulary())
    texts = ["a man is eating food", "a man is eating a piece of bread", "the girl carries a baby"]
    ids, mask = pieces.batch(texts)
    with torch.no_grad():
        v = torch.nn.functional.normalize(
            model(torch.from_numpy(ids), torch.from_numpy(mask)), dim=1
        )
    sims = (v @ v.T).numpy()
    assert sims[0, 1] > 0.6 and sims[0, 2] < 0.2  # the published model's behaviour


def test_word_ids_and_dense_features() -> None:
    words = WordIds(["<pad>", "<unk>", "red", "dress"])
    ids, lengths = words.batch(["Red DRESS", "gown"])
    assert ids.tolist() == [[2, 3], [1, 0]] and lengths.tolist() == [2, 1]
    f = product_features({ATTRIBUTE_KEYS[3]: 0.7, "nope": 1.0}, {"red": 0.5}, np.ones(4))
    assert (
        f.shape == (dense_width(4),) and f[3] == pytest.approx(0.7) and f[-4:].tolist() == [1.0] * 4
    )


def test_losses_prefer_the_clicked_product() -> None:
    torch.manual_seed(0)
    q = torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    hard = torch.zeros(4, 2, 8)
    hard[:, 0] = -q  # a skipped product opposite each query
    good, bad = q.clone(), torch.nn.functional.normalize(torch.randn(4, 8), dim=1)
    assert contrastive_loss(q, good, hard) < contrastive_loss(q, bad, hard)
    assert triplet_loss(q, good, hard) < triplet_loss(q, bad, hard)


def _table(n: int = 12) -> ProductTable:
    rng = np.random.default_rng(0)
    colours = ["red", "blue", "green"]
    texts = [f"{colours[i % 3]} dress" for i in range(n)]
    dense = np.stack(
        [product_features({}, {colours[i % 3]: 1.0}, rng.normal(size=8)) for i in range(n)]
    )
    return ProductTable([f"p{i}" for i in range(n)], texts, dense.astype(np.float32))


@pytest.mark.parametrize("kind", ["gru", "minilm"])
def test_training_moves_queries_toward_their_clicks(kind: str) -> None:
    table = _table()
    words = {"red": "crimson frock", "blue": "azure frock", "green": "emerald frock"}
    mined = [
        (words[table.texts[i].split()[0]], table.ids[i], [table.ids[(i + 1) % 12]])
        for i in range(12)
    ] * 8
    pairs = TextPairs.from_mined([*mined, ("x", "unknown-id", [])], table)
    assert len(pairs) == 96
    config = TextTrainConfig(kind=kind, epochs=6, batch=16, frequent_words=1000)  # type: ignore[arg-type]
    model = train_text_model(pairs, table, config)
    assert model.history[-1] < model.history[0]
    q = model.encode_queries(["crimson frock", "azure frock"])
    p = model.encode_products(table)
    assert np.allclose(np.linalg.norm(q, axis=1), 1, atol=1e-5)
    best = np.argsort(-(q @ p.T), axis=1)[:, :4]
    assert all(table.texts[j].startswith("red") for j in best[0])
    assert all(table.texts[j].startswith("blue") for j in best[1])
    with pytest.raises(ValueError):
        train_text_model(TextPairs([], [], []), table, config)


@pytest.mark.parametrize("kind", ["gru", "minilm"])
def test_exported_towers_serve_what_torch_computed(kind: str) -> None:
    from processors.text_encoder import TextEncoder
    from training.text_export import export_text_model

    table = _table()
    none: list[str] = []
    mined = [("crimson frock", table.ids[i], none) for i in range(0, 12, 3)] * 4
    config = TextTrainConfig(kind=kind, epochs=1, batch=8, frequent_words=500)  # type: ignore[arg-type]
    model = train_text_model(TextPairs.from_mined(mined, table), table, config)
    artifacts = export_text_model(model, table.texts[:3], table.dense[:3])
    encoder = TextEncoder(artifacts.query, artifacts.product, f"text-{kind}")
    assert encoder.kind == kind and encoder.dim == 128
    texts = ["crimson frock", "a much longer query about a red dress with long sleeves", "x"]
    np.testing.assert_allclose(encoder.queries(texts), model.encode_queries(texts), atol=1e-4)
    np.testing.assert_allclose(
        encoder.products(table.texts, table.dense), model.encode_products(table), atol=1e-4
    )
    assert encoder.queries([]).shape == (0, 128)
