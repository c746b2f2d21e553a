"""SDXL-family base models: loading (`load`), SGM names (`sgm`), the tiny test model (`tiny`)."""
