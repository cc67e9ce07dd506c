"""Fakes of the two outside services (TikTok, Stripe), behaving as their documentation says."""
