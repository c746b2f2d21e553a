"""The batched pipeline: pictures prepared in loader threads, the model run in batches, failures passed on."""

import threading

import numpy as np

from gafu.tagging import pipeline
from gafu.tagging.locate import locate_tagger
from gafu.tagging.model import open_tagger
from gafu.tagging.pipeline import Failed, Scored, score_pictures
from gafu.tagging.preprocess import load_for_tagger
from tests.conftest import write_picture


def test_pictures_load_in_threads_and_run_in_batches(tiny_tagger, tmp_path, monkeypatch):
    paths = [write_picture(tmp_path / f"{i}.png", seed=i) for i in range(7)]
    paths.insert(3, tmp_path / "broken.png")
    paths[3].write_bytes(b"\x89PNG broken")
    tagger = open_tagger(locate_tagger(str(tiny_tagger)))
    batches, loader_threads = [], set()
    real_predict = tagger.predict

    def predict(pictures):
        batches.append(len(pictures))
        return real_predict(pictures)

    def prepare(*args):
        loader_threads.add(threading.current_thread().name)
        return real_prepare(*args)

    def describe(image):  # runs on the decoded picture, in the loader threads too
        loader_threads.add(threading.current_thread().name)
        return image.size

    real_prepare = pipeline.prepare_picture
    tagger.predict = predict
    monkeypatch.setattr(pipeline, "prepare_picture", prepare)
    results = list(score_pictures(tagger, paths, batch_size=3, threads=2, describe=describe))

    assert batches == [3, 3, 1]
    assert threading.current_thread().name not in loader_threads and loader_threads
    failed = [r for r in results if isinstance(r, Failed)]
    assert [r.index for r in failed] == [3] and "broken.png" in str(failed[0].error)
    scored = {r.index: r for r in results if isinstance(r, Scored)}
    assert sorted(scored) == [0, 1, 2, 4, 5, 6, 7]
    assert all(r.described == (96, 64) for r in scored.values())
    one = load_for_tagger(paths[5], 448, 448)
    np.testing.assert_allclose(scored[5].probabilities, real_predict(one[None])[0], atol=1e-5)
