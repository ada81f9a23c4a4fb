"""Files: images in and out with Pillow (`image_io`), latent files (`latents`,
`latent_maps`) and atomic writes (`files`)."""
