import math

from gafu.plan.batch import EFFECTIVE_BATCH_TOLERANCE, BatchPairs, choose_batch


def _pairs(effective, steps_per_epoch=1):
    """One bucket: an epoch of steps_per_epoch × effective samples."""
    return BatchPairs(effective, steps_per_epoch, lambda b: math.ceil(effective * steps_per_epoch / b))


def test_an_exact_pair_is_preferred_when_it_fits():
    # P2: 40 target pictures × 2 repeats = 80 = batch × accumulation; 2 steps per epoch with reg.
    # A 24 GB card fitting batch 9 used to get 9 × 9 = 81 (one pass fewer); 8 × 10 = 80 fits too.
    batch, why = choose_batch(_pairs(80, 2), 9)
    assert (batch, _pairs(80, 2).accumulation(batch)) == (8, 10)
    assert "batch size 8 × accumulation 10 = effective batch 80" in why
    batch, why = choose_batch(_pairs(200, 2), 4)
    assert batch == 4 and "accumulation 50 = effective batch 200" in why
    assert choose_batch(_pairs(194), 4)[0] == 2  # 194 = 2 × 97: batch 2 is half the fit, within reach
    assert choose_batch(_pairs(7), 16)[0] == 7  # never larger than the effective batch
    assert choose_batch(_pairs(200), 140)[0] == 100  # 100 × 2, not 105 × 2 = 210
    assert choose_batch(_pairs(80, 2), 11)[0] == 10  # 10 × 8


def test_a_near_pair_only_when_no_exact_pair_is_within_reach():
    batch, why = choose_batch(_pairs(194), 8)  # exact pairs: 1 × 194 and 2 × 97, under half of 8
    assert batch == 8
    assert "8 (the memory estimate fits batches up to 8) × accumulation 25 = 200" in why
    assert "+3.1%" in why and "largest exact pair, 2 × 97, is under 50%" in why and "batch_size = 2" in why
    prime = 2 * 101  # 202 = 2 × 101: near pairs within 5 %, or 2 × 101
    assert choose_batch(_pairs(prime, 2), 13)[0] == 13  # 13 × 16 = 208, +3.0 %


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
