# MariaDB has no super_read_only: MHA 0.58 dies asking for it; read it as off (see mha.sh)
/super_read_only as Value/,/execute/ s|^  \$sth->execute();$|  eval { $sth->execute(); 1 } or return ( 0, 0 );|
