"""Bounces and complaints: reports parsed (pure), then recorded against subscribers and sends."""
