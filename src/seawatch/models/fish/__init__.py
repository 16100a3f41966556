"""Fish re-identification: synthetic zebrafish, embedding network, gallery and evaluation."""
