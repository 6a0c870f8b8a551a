"""The style world (docs/world.md): style images, content images and the loss network."""
