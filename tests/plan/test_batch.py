import math

from gafu.plan.batch import EFFECTIVE_BATCH_TOLERANCE, BatchPairs, choose_batch


def _pairs(effective, steps_per_epoch=1):
    """One bucket: an epoch of steps_per_epoch × effective samples."""
    return BatchPairs(effective, steps_per_epoch, lambda b: math.ceil(effective * steps_per_epoch / b))


def test_choose_batch_prefers_fewest_passes_then_exact_pairs():
    batch, why = choose_batch(_pairs(200, 2), 4)
    assert batch == 4 and "accumulation 50 = effective batch 200" in why
    batch, why = choose_batch(_pairs(194), 4)  # 194 = 2 × 97
    assert batch == 4
    assert "4 (the memory estimate fits batches up to 4) × accumulation 49 = 196" in why
    assert "+1.0%" in why and "exact pair 2 × 97" in why and "batch_size = 2" in why
    assert choose_batch(_pairs(7), 16)[0] == 7  # never larger than the effective batch
    assert choose_batch(_pairs(200), 140)[0] == 100  # 100 × 2, not 105 × 2 = 210
    assert choose_batch(_pairs(80, 2), 11)[0] == 10  # 10 × 8; 11 × 8 = 88 is too far, 11 × 7 a third step


def test_chosen_pairs_keep_the_recipes_steps_per_epoch():
    for steps in (1, 2):
        for effective in range(1, 260, 7):
            for max_batch in (1, 3, 4, 6, 8, 13):
                pairs = _pairs(effective, steps)
                batch, _ = choose_batch(pairs, max_batch)
                accumulation = pairs.accumulation(batch)
                assert 1 <= batch <= max_batch
                assert math.ceil(pairs.micro_batches(batch) / accumulation) == steps
                assert abs(batch * accumulation - effective) <= EFFECTIVE_BATCH_TOLERANCE * effective
