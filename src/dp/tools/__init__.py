"""Tools around the training loop, built on `dp.nn` and never used by it: checkpoints
(`checkpoint`), graph drawings (`draw`), figures (`plots`), the scikit-learn estimator
(`sklearn`) and the original course's API (`classic`)."""
