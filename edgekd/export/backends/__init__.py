"""One module per backend, each defining one `Exporter` subclass; edgekd.export registers every module here."""
