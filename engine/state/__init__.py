"""The state API's engine side: what each owner answers (`snapshot`), how the answers are
gathered from the processes the head knows of (`gather`), and how they are filtered,
limited and summarized (`query`). The public functions are in `engine/util/state.py`.
"""
