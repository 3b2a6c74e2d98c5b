"""One EM iteration for a mixture of binomials: write the body, then check it.

    python -m compare check examples/em_step_template.py      # FILE.py:FUNCTION for another name

runs your function on the first iteration of Chapter 6, Section 6.3 (it must print the
weights of (6.14) and the biases of Table 6.4), then iterates it on the chapter's data and
on seeded synthetic data (other N, other numbers of flips, unequal starting weights)
against the reference EM, and checks that the log-likelihood never decreases. It prints a
graded list and exits 0 only if everything passed; when your answer matches a typical slip
(weights divided by 20, an E-step without the weights, posteriors normalised over the
wrong axis, 10 flips hard-coded, biases not divided by the trials, the pair returned the
wrong way round) it names the slip and says why it is wrong.

Your function runs in a separate process with numpy and scipy; importing the suite's own
EM (``em``, ``compare``, ``models``) is refused there. What it prints goes to stderr,
above the graded list, each line marked with ``|``.
"""

import numpy as np


def em_step(heads, trials, weights, p):
    """One EM iteration (E-step, then M-step) for a K-component binomial mixture.

    Parameters
    ----------
    heads : ndarray of int, shape (N,)
        Heads in each of the N sequences.
    trials : ndarray of int, shape (N,)
        Flips in each sequence (10 for every sequence in the chapter's example; use these,
        not 10: the synthetic data sets have other numbers of flips).
    weights : ndarray of float, shape (K,)
        Current mixture weights w_j (they sum to 1).
    p : ndarray of float, shape (K,)
        Current coin biases phi_j.

    Returns
    -------
    new_weights, new_p : ndarray of float, shape (K,)
        The updated weights (6.14) and biases (6.15).

    Steps (Section 6.3):
    1. E-step: for each sequence i and coin j, the posterior P(Y_i = c_j | x_i) by Bayes'
       rule (Table 6.1): w_j * Binomial(heads_i | trials_i, p_j), normalised over j.
    2. Expected counts E[#c_j] (6.10): sum the posteriors over sequences.
    3. Expected heads of coin j (Table 6.3): sum over sequences of posterior * heads_i.
    4. M-step: w_j = E[#c_j] / sum_k E[#c_k] (footnote 8: divide by the sum, not by N);
       p_j = E[heads of c_j] / E[flips of c_j], the flips being sum of posterior * trials_i.
    """
    raise NotImplementedError("write one EM iteration here")


if __name__ == "__main__":
    print(
        em_step(
            np.array([6, 5, 4]), np.array([10, 10, 10]), np.array([0.5, 0.5]), np.array([0.4, 0.6])
        )
    )
