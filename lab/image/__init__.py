"""Guest images: recipes (images/*.yaml) built into cached ext4 root images."""
