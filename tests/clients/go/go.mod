module hookwall.test/clients/post

go 1.19
