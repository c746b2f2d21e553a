"""SDXL conditioning from both text encoders, pooled output and size/crop time ids."""

import torch

from gafu.train.conditioning import encode_text, time_ids, token_ids, too_long


def test_both_encoders_penultimate_states_are_concatenated_and_pooled_is_the_second(tiny_base):
    captions = ["mzh_style, 1girl, smile", "1girl, white dress"]
    with torch.no_grad():
        text = encode_text(tiny_base.text_encoders, tiny_base.tokenizers, captions, torch.device("cpu"))
        first = tiny_base.text_encoder(token_ids(tiny_base.tokenizer, captions), output_hidden_states=True)
        second = tiny_base.text_encoder_2(
            token_ids(tiny_base.tokenizer_2, captions), output_hidden_states=True
        )
    widths = tiny_base.text_encoder.config.hidden_size + tiny_base.text_encoder_2.config.hidden_size
    assert text.hidden_states.shape == (2, 77, widths)
    assert widths == tiny_base.unet.config.cross_attention_dim
    assert torch.equal(text.hidden_states, torch.cat([first.hidden_states[-2], second.hidden_states[-2]], -1))
    assert torch.equal(text.pooled, second.text_embeds)


def test_time_ids_are_original_size_crop_and_target_as_height_width():
    ids = time_ids([(900, 600), (64, 64)], [(10, 4), (0, 0)], (832, 576), torch.device("cpu"))
    assert ids.tolist() == [[900, 600, 10, 4, 832, 576], [64, 64, 0, 0, 832, 576]]


def test_long_captions_are_cut_to_one_clip_window(tiny_base):
    long = ", ".join(f"tag number {i}" for i in range(60))
    assert too_long(tiny_base.tokenizers, long)
    assert not too_long(tiny_base.tokenizers, "1girl, solo")
    assert token_ids(tiny_base.tokenizer, [long]).shape == (1, 77)
