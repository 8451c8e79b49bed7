# MHA 0.58's version parsers take only the numbers they format (see mha.sh)
s|sprintf( '%03d%03d%03d', $str =~ m/(\\d+)/g )|sprintf( '%03d%03d%03d', ( $str =~ m/(\\d+)/g )[0..2] )|
s|sprintf( '%03d%03d', $str =~ m/(\\d+)/g )|sprintf( '%03d%03d', ( $str =~ m/(\\d+)/g )[0..1] )|
