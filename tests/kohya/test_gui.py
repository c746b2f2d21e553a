"""kohya_ss's saved JSON fields → sd-scripts options, as kohya_ss passes them."""

from gafu.kohya.gui import command_line_options, gui_options


def test_the_guis_own_fields_become_sd_scripts_options():
    options = gui_options(
        {
            "LoRA_type": "LyCORIS/LoKr",
            "LyCORIS_preset": "attn-mlp",
            "conv_dim": 16,
            "conv_alpha": 8,
            "factor": 4,
            "use_tucker": False,
            "epoch": 30,
            "max_train_epochs": "",
            "max_resolution": "1024,1024",
            "optimizer": "AdamW8bit",
            "optimizer_args": '"weight_decay=0.1" "betas=0.9,0.99"',
            "xformers": "sdpa",
            "sdxl": True,
            "sdxl_no_half_vae": True,
            "seed": "",
            "keep_tokens": "1",
            "gradient_accumulation_steps": 4.0,
            "lr_scheduler_num_cycles": "",
        }
    )
    assert options["network_module"] == "lycoris.kohya"
    assert options["network_args"][:2] == ["algo=lokr", "preset=attn-mlp"]
    assert {"conv_dim=16", "conv_alpha=8", "factor=4", "use_tucker=False"} <= set(options["network_args"])
    assert options["max_train_epochs"] == 30 and "epoch" not in options
    assert options["resolution"] == "1024,1024" and options["optimizer_type"] == "AdamW8bit"
    assert options["optimizer_args"] == ["weight_decay=0.1", "betas=0.9,0.99"]
    assert options["sdpa"] is True and "xformers" not in options
    assert options["no_half_vae"] is True and "sdxl" not in options
    assert "seed" not in options  # "" is unset
    assert options["keep_tokens"] == 1 and options["gradient_accumulation_steps"] == 4.0
    assert options["lr_scheduler_num_cycles"] == 30  # the GUI's default: one cycle per epoch
    assert not {"conv_dim", "factor", "LyCORIS_preset", "LoRA_type"} & set(options)


def test_an_explicit_max_train_epochs_wins_over_epoch():
    assert gui_options({"epoch": 10, "max_train_epochs": "40"})["max_train_epochs"] == 40


def test_noise_offset_type_picks_one_kind_of_noise():
    fields = {"noise_offset": 0.05, "multires_noise_iterations": 8, "multires_noise_discount": 0.3}
    multires = gui_options({**fields, "noise_offset_type": "Multires"})
    original = gui_options({**fields, "noise_offset_type": "Original"})
    assert "noise_offset" not in multires and multires["multires_noise_iterations"] == 8
    assert original["noise_offset"] == 0.05 and "multires_noise_iterations" not in original


def test_learning_rates_of_zero_are_unset_and_a_zero_text_encoder_rate_trains_the_unet_only():
    options = gui_options({"learning_rate": 1e-3, "unet_lr": 1e-3, "text_encoder_lr": 0})
    assert options["network_train_unet_only"] is True and "text_encoder_lr" not in options
    options = gui_options({"learning_rate": 1e-3, "unet_lr": 0, "text_encoder_lr": 5e-4})
    assert "unet_lr" not in options and "network_train_unet_only" not in options


def test_standard_lora_is_sd_scripts_own_network_and_sample_prompts_are_text():
    options = gui_options({"LoRA_type": "Standard", "conv_dim": 8, "sample_prompts": "1girl, smile --n bad"})
    assert options["network_module"] == "networks.lora" and "network_args" not in options
    assert options["sample_prompts_text"] == "1girl, smile --n bad" and "sample_prompts" not in options


def test_additional_parameters_are_read_as_command_line_options():
    options = gui_options(
        {"additional_parameters": '--max_grad_norm 0.5 --debiased_estimation_loss --foo "a b" c'}
    )
    assert options["max_grad_norm"] == 0.5 and options["debiased_estimation_loss"] is True
    assert options["foo"] == ["a b", "c"]
    assert command_line_options("") == {}
