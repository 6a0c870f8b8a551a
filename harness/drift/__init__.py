"""The drift scenario: the closed loop recovering accuracy on shifted traffic, measured."""
