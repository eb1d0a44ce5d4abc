"""The schedule of k: the fraction of each batch G learns from."""

__all__ = ["k_fraction_by_epoch", "k_fraction_by_progress", "kept_count"]


def k_fraction_by_epoch(epoch: int, gamma: float, nu: float) -> float:
    """k / B after ``epoch`` epochs: k starts at B and, once per epoch, k <- max(gamma * k, nu * B)."""
    if epoch < 0:
        raise ValueError(f"epoch must be >= 0, got {epoch}")
    return max(gamma**epoch, nu)


def k_fraction_by_progress(fraction_done: float, gamma: float, nu: float) -> float:
    """k / B when ``fraction_done`` of training is done: ``max(gamma ** fraction_done, nu)``.

    Here ``gamma`` is the factor applied over the whole run (e.g. ``gamma = nu`` reaches nu * B
    exactly at the end), which makes the schedule independent of the data set's size.
    """
    if not 0.0 <= fraction_done <= 1.0:
        raise ValueError(f"fraction_done must be in [0, 1], got {fraction_done}")
    return max(gamma**fraction_done, nu)


def kept_count(k_fraction: float, batch: int) -> int:
    """The number of fakes kept in a batch of ``batch``: ``floor(k_fraction * batch)``, at least 1.

    Floored as the reference implementations do (``int(topk_rate * N)``); a product that is a
    whole number but for float error (0.29 * 100 = 28.999999999999996) counts as that number.
    """
    return min(batch, max(1, int(k_fraction * batch + 1e-9)))
