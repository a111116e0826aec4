"""What Segue does, by job: transitions (and their keyframes and history), rendering, and views (API shapes).

Routes call these; they never talk to the database themselves.
"""
