"""UrbanSound8K dataset layer and log-mel feature extraction.

Pure modules (``us8k``, ``dataset``, ``config``, ``logmel``, ``cache``, ``synthetic``) import
neither Ray nor TensorFlow; ``extract`` is the thin Ray wiring beside them.
"""
