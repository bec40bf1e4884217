"""Networks: triplane geometry, the projected autoencoder, the triplane UNet, the joint model."""
