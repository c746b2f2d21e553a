"""The LoKr network: which modules are adapted, under which names, saved how (P6)."""
