"""The originlock CDK app: ``app.py`` composes, one construct per capability."""
