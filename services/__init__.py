"""What Segue does, by job, for the web app and the workers alike: transitions (keyframes, history, notes,
links), rendering and its jobs, exports, suggestions, MoCE, autofix, scores, soundtracks, and the API's
shapes (schemas, presenters). Errors are domain errors (services/errors.py); no web code here.
"""
