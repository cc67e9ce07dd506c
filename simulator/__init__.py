"""World simulator: a seeded, scalable world of visitors, touches and Stripe purchases, with ground truth."""

from simulator.world import World, WorldConfig

__all__ = ["World", "WorldConfig"]
