"""Word times: the CTC aligner and the phonetic span aligner it runs on."""
