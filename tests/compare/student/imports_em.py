"""A student file that imports the suite's reference EM at the top: refused at load."""

from em import BinomialData, MixtureParams, e_step, m_step


def em_step(heads, trials, weights, p):
    params = MixtureParams(weights, p)
    new = m_step(e_step(BinomialData.from_sequences(heads, trials), params), params)
    return new.weights, new.p
