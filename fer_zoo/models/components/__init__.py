"""Reusable plain nn.Modules shared by the methods."""
