"""Run directories: the layout ``train`` writes and every reader reads (:mod:`.run`)."""
