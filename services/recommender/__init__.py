"""The recommender worker: clicks in, one ranked, explained recommendation out per click."""
